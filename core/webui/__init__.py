"""What the admin and account web interfaces share: login sessions (:mod:`.auth`),
the blueprint with the sherpa API (:mod:`.iface`), and page rendering with one
layout, stylesheet and script (:mod:`.pages`, ``templates/``, ``static/``).
"""
