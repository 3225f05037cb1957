// moxtrio admin/account interface: login, API calls with the CSRF token,
// confirmations before destructive actions, and messages in the page.
// No framework, no build step; the pages work with the keyboard alone.
(function () {
  'use strict';
  var body = document.body;
  var kind = body.dataset.kind;
  var base = body.dataset.base;
  var csrfKey = kind + 'csrf';

  function show(text, isError) {
    var el = document.getElementById('message');
    el.textContent = text;
    el.className = isError ? 'msg error' : 'msg ok';
    el.hidden = false;
    el.focus();
  }

  function call(fn, params) {
    var headers = {'Content-Type': 'application/json'};
    var csrf = localStorage.getItem(csrfKey);
    if (csrf) {
      headers['x-mox-csrf'] = csrf;
    }
    return fetch(base + 'api/' + fn, {
      method: 'POST', headers: headers, credentials: 'same-origin',
      body: JSON.stringify({params: params})
    }).then(function (resp) {
      return resp.json().catch(function () {
        throw new Error('server answered HTTP ' + resp.status);
      });
    }).then(function (data) {
      if (data.error) {
        var err = new Error(data.error.message);
        err.code = data.error.code;
        throw err;
      }
      return data.result;
    });
  }

  function selectedIDs() {
    var out = [];
    document.querySelectorAll('input[name="id"]:checked').forEach(function (el) {
      out.push(parseInt(el.value, 10));
    });
    return out;
  }

  function fieldValue(form, name) {
    if (name === 'ids') {
      var ids = selectedIDs();
      if (!ids.length) {
        throw new Error('Select at least one row first.');
      }
      return ids;
    }
    // "#id" names a field of another form on the page (a "test" button next to "save").
    var els = name.charAt(0) === '#' ? [document.getElementById(name.slice(1))].filter(Boolean)
      : form.querySelectorAll('[name="' + name + '"]');
    if (!els.length) {
      throw new Error('form field ' + name + ' missing');
    }
    var el = els[0];
    if (el.dataset.list !== undefined) {
      if (el.tagName === 'TEXTAREA') {
        return el.value.split('\n').map(function (s) { return s.trim(); }).filter(Boolean);
      }
      var vals = [];
      Array.prototype.forEach.call(els, function (e) { if (e.checked) { vals.push(e.value); } });
      return vals;
    }
    if (el.type === 'checkbox') {
      return el.checked;
    }
    if (el.dataset.json !== undefined) {
      return JSON.parse(el.value);
    }
    if (el.type === 'number') {
      var n = Number(el.value);
      if (el.dataset.scale) {
        n = n * Number(el.dataset.scale);
      }
      return n;
    }
    return el.value;
  }

  function fill(form, v) {
    if (typeof v === 'string' && v.charAt(0) === '$') {
      return fieldValue(form, v.slice(1));
    }
    if (Array.isArray(v)) {
      return v.map(function (x) { return fill(form, x); });
    }
    if (v && typeof v === 'object') {
      var o = {};
      Object.keys(v).forEach(function (k) { o[k] = fill(form, v[k]); });
      return o;
    }
    return v;
  }

  // "{result}" in a done-text is the whole result; "{0}", "{1}"... its items.
  function fillDone(text, result) {
    var out = text.replace('{result}', describe(result));
    if (Array.isArray(result)) {
      result.forEach(function (v, i) { out = out.replace('{' + i + '}', describe(v) || '-'); });
    }
    return out;
  }

  function describe(result) {
    if (Array.isArray(result)) {
      return result.join(', ');
    }
    if (result && typeof result === 'object') {
      return JSON.stringify(result);
    }
    return result === null || result === undefined ? '' : String(result);
  }

  function submitAPI(form) {
    var params;
    try {
      params = fill(form, JSON.parse(form.dataset.params || '[]'));
    } catch (e) {
      show(e.message, true);
      return;
    }
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      return;
    }
    var buttons = form.querySelectorAll('button');
    buttons.forEach(function (b) { b.disabled = true; });
    call(form.dataset.fn, params).then(function (result) {
      if (form.dataset.fn === 'Logout') {
        localStorage.removeItem(csrfKey);
      }
      if (form.dataset.output) {
        var out = document.getElementById(form.dataset.output);
        out.textContent = form.dataset.done ? fillDone(form.dataset.done, result) : describe(result);
        out.hidden = false;
        buttons.forEach(function (b) { b.disabled = false; });
        show('Test call made, result below.', false);
        return;
      }
      if (form.dataset.done) {
        sessionStorage.setItem('flash', fillDone(form.dataset.done, result));
      }
      if (form.dataset.next) {
        window.location.href = form.dataset.next;
      } else {
        window.location.reload();
      }
    }).catch(function (err) {
      buttons.forEach(function (b) { b.disabled = false; });
      if (err.code === 'user:noAuth' || err.code === 'user:badAuth') {
        localStorage.removeItem(csrfKey);
        show(err.message + ' — reload the page to log in again.', true);
        return;
      }
      show('Error: ' + err.message, true);
    });
  }

  function submitLogin(form) {
    call('LoginPrep', []).then(function (token) {
      var params = [token];
      if (form.elements.username) {
        params.push(form.elements.username.value);
      }
      params.push(form.elements.password.value);
      return call('Login', params);
    }).then(function (csrf) {
      localStorage.setItem(csrfKey, csrf);
      window.location.reload();
    }).catch(function (err) {
      show('Login failed: ' + err.message, true);
      form.elements.password.select();
    });
  }

  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    if (form.id === 'login') {
      ev.preventDefault();
      submitLogin(form);
    } else if (form.dataset.fn) {
      ev.preventDefault();
      submitAPI(form);
    }
  });

  document.querySelectorAll('input[data-selectall]').forEach(function (all) {
    all.addEventListener('change', function () {
      document.querySelectorAll('input[name="id"]').forEach(function (el) { el.checked = all.checked; });
    });
  });

  // The mail viewer's list: new messages arrive as server-sent events.
  var list = document.getElementById('mail-list');
  if (list && list.dataset.events && window.EventSource) {
    var events = new EventSource(list.dataset.events);
    events.addEventListener('message', function (ev) {
      var m = JSON.parse(ev.data);
      var tr = document.createElement('tr');
      tr.className = 'new';
      [m.ID, m.Received, m.From, m.To, null, m.Mailbox].forEach(function (v) {
        var td = document.createElement('td');
        if (v === null) {
          var a = document.createElement('a');
          a.href = list.dataset.base + m.ID;
          a.textContent = m.Subject || '(no subject)';
          td.appendChild(a);
        } else {
          td.textContent = String(v);
        }
        tr.appendChild(td);
      });
      tr.firstChild.className = 'num';
      var body = list.tBodies[0];
      body.insertBefore(tr, body.firstChild);
      var empty = body.querySelector('tr.empty');
      if (empty) {
        empty.hidden = true;
      }
      document.getElementById('live-state').textContent = 'New message: ' + (m.Subject || '(no subject)');
    });
    window.addEventListener('pagehide', function () { events.close(); });
  }

  var flash = sessionStorage.getItem('flash');
  if (flash) {
    sessionStorage.removeItem('flash');
    show(flash, false);
  }
}());
