"""Typed models of mox.conf (:class:`Static`) and domains.conf (:class:`Dynamic`).

Attribute names are exactly mox's key names (``static.Listeners["local"].SMTP.Port``)
so that a reader of mox's documentation finds the same names here, and so the
sconf reader can map keys to attributes without a translation table. Field
order is mox's declaration order (the writer depends on it).

Fields hold the raw configured values; mox's defaults are applied by the
lower-case accessors (``listener.port("SMTP")``, ``account.max_outgoing_messages_per_day``,
``destination.mailbox``) so that writing a config back does not add keys the
operator never set.

Our extensions (documented in the spec): ``Static.Plugins`` and
``Account.WebhookSigningSecret``, both optional.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import ClassVar

from core.config.sconf import Duration, opt, req

DEFAULT_MAX_MSG_SIZE = 100 * 1024 * 1024
DEFAULT_MAX_OUTGOING_MESSAGES_PER_DAY = 1000
DEFAULT_MAX_FIRST_TIME_RECIPIENTS_PER_DAY = 200
DEFAULT_FIRST_TIME_SENDER_DELAY = datetime.timedelta(seconds=15)

SCONF_NOTE = (
    "NOTE: This config file is in 'sconf' format. Indent with tabs. Comments must be on "
    "their own line, they don't end a line. Do not escape or quote strings. Details: "
    "https://pkg.go.dev/github.com/mjl-/sconf.\n\n\n"
)

_PORT_DOC = (
    "Default 80 for HTTP and 443 for HTTPS. See Hostname at Listener for hostname matching "
    "behaviour."
)
_PATH_DOC = "Path to serve requests on. Should end with a slash, related to cookie paths."


def _zero_duration() -> Duration:
    return Duration(0)


# --- mox.conf ---------------------------------------------------------------


@dataclass
class CA:
    AdditionalToSystem: bool = opt("", False)
    CertFiles: list[str] = opt(factory=list)


@dataclass
class GlobalTLS:
    CA: CA | None = opt("", None)


@dataclass
class ExternalAccountBinding:
    KeyID: str = req("Key identifier, from ACME provider.", "")
    KeyFile: str = req("File containing the base64url-encoded key used to sign account requests.", "")


@dataclass
class ACME:
    DirectoryURL: str = req("For letsencrypt, use https://acme-v02.api.letsencrypt.org/directory.", "")
    RenewBefore: datetime.timedelta = opt("How long before expiration to renew the certificate. Default is 30 days.", factory=_zero_duration)
    ContactEmail: str = req("Email address to register at ACME provider.", "")
    Port: int = opt("TLS port for ACME validation, 443 by default.", 0)
    IssuerDomainName: str = opt("", "")
    ExternalAccountBinding: ExternalAccountBinding | None = opt("", None)


@dataclass
class KeyCert:
    CertFile: str = req("Certificate including intermediate CA certificates, in PEM format.", "")
    KeyFile: str = req(
        "Private key for certificate, in PEM format. PKCS8 is recommended, but PKCS1 and EC "
        "private keys are recognized as well.",
        "",
    )


@dataclass
class ListenerTLS:
    ACME: str = opt("Name of provider from top-level configuration to use for ACME, e.g. letsencrypt.", "")
    KeyCerts: list[KeyCert] = opt(
        "Keys and certificates to use for this listener. The files are opened by the privileged "
        "root process and passed to the unprivileged mox process, so no special permissions are "
        "required on the files. If the private key will not be replaced when refreshing "
        "certificates, also consider adding the private key to HostPrivateKeyFiles and "
        "configuring DANE TLSA DNS records.",
        factory=list,
    )
    MinVersion: str = opt("Minimum TLS version. Default: TLSv1.2.", "")
    HostPrivateKeyFiles: list[str] = opt("", factory=list)
    ClientAuthDisabled: bool = opt("", False)


@dataclass
class SMTPService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 25.", 0)
    NoSTARTTLS: bool = opt("Do not offer STARTTLS to secure the connection. Not recommended.", False)
    RequireSTARTTLS: bool = opt("Do not accept incoming messages if STARTTLS is not active.", False)
    NoRequireTLS: bool = opt("Do not announce the REQUIRETLS SMTP extension.", False)
    DNSBLs: list[str] = opt("Addresses of DNS block lists for incoming messages.", factory=list)
    FirstTimeSenderDelay: datetime.timedelta | None = opt(
        "Delay before accepting a message from a first-time sender for the destination account. "
        "Default: 15s.",
        None,
    )
    TLSSessionTicketsDisabled: bool = opt("Override default setting for enabling TLS session tickets.", False)

    @property
    def first_time_sender_delay(self) -> datetime.timedelta:
        """Effective delay: configured value, else 15 s."""
        if self.FirstTimeSenderDelay is None:
            return DEFAULT_FIRST_TIME_SENDER_DELAY
        return self.FirstTimeSenderDelay


@dataclass
class SubmissionService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 587.", 0)
    NoRequireSTARTTLS: bool = opt(
        "Do not require STARTTLS. Since users must login, this means password may be sent without "
        "encryption. Not recommended.",
        False,
    )


@dataclass
class SubmissionsService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 465.", 0)
    EnabledOnHTTPS: bool = opt("Additionally enable submission on HTTPS port 443 via TLS ALPN.", False)


@dataclass
class IMAPService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 143.", 0)
    NoRequireSTARTTLS: bool = opt(
        "Enable this only when the connection is otherwise encrypted (e.g. through a VPN).", False
    )


@dataclass
class IMAPSService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 993.", 0)
    EnabledOnHTTPS: bool = opt("Additionally enable IMAP on HTTPS port 443 via TLS ALPN.", False)


@dataclass
class WebService:
    """An internal web interface: account, admin, webmail, webapi."""

    Enabled: bool = req("", False)
    Port: int = opt(_PORT_DOC, 0)
    Path: str = opt(_PATH_DOC, "")
    Forwarded: bool = opt(
        'If set, X-Forwarded-* headers are used for the remote IP address for rate limiting and '
        'for the "secure" status of cookies.',
        False,
    )

    def effective_port(self, default: int) -> int:
        return self.Port or default

    def effective_path(self, default: str) -> str:
        """Configured path (or ``default``), always ending in ``/``."""
        path = self.Path or default
        if not path.endswith("/"):
            path += "/"
        return path


@dataclass
class PortService:
    """Services with only Enabled and Port (metrics, pprof)."""

    Enabled: bool = req("", False)
    Port: int = opt("", 0)


@dataclass
class MetricsService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 8010.", 0)


@dataclass
class PprofService:
    Enabled: bool = req("", False)
    Port: int = opt("Default 8011.", 0)


@dataclass
class AutoHTTPSService:
    Enabled: bool = req("", False)
    Port: int = opt("TLS port, 443 by default.", 0)
    NonTLS: bool = opt("If set, plain HTTP instead of HTTPS is spoken on the configured port.", False)


@dataclass
class WebserverHTTPService:
    Enabled: bool = req("", False)
    Port: int = opt("Port for plain HTTP (non-TLS) webserver.", 0)
    RateLimitDisabled: bool = opt("Disable rate limiting for all requests to this port.", False)


@dataclass
class WebserverHTTPSService:
    Enabled: bool = req("", False)
    Port: int = opt("Port for HTTPS webserver.", 0)
    RateLimitDisabled: bool = opt("Disable rate limiting for all requests to this port.", False)


@dataclass
class Listener:
    IPs: list[str] = req(
        "Use 0.0.0.0 to listen on all IPv4 and/or :: to listen on all IPv6 addresses, but it is "
        "better to explicitly specify the IPs you want to use for email, as mox will make sure "
        "outgoing connections will only be made from one of those IPs. If both outgoing IPv4 and "
        "IPv6 connectivity is possible, and only one family has explicitly configured addresses, "
        "both address families are still used for outgoing connections. Use the \"direct\" "
        "transport to limit address families for outgoing connections.",
        factory=list,
    )
    NATIPs: list[str] = opt("", factory=list)
    IPsNATed: bool = opt("", False)
    Hostname: str = opt("If empty, the config global Hostname is used.", "")
    TLS: ListenerTLS | None = opt("For SMTP/IMAP STARTTLS, direct TLS and HTTPS connections.", None)
    SMTPMaxMessageSize: int = opt(
        "Maximum size in bytes for incoming and outgoing messages. Default is 100MB.", 0
    )
    SMTP: SMTPService = opt("", factory=SMTPService)
    Submission: SubmissionService = opt(
        "SMTP for submitting email, e.g. by email applications. Starts out in plain text, can be "
        "upgraded to TLS with the STARTTLS command. Prefer using Submissions which is always a "
        "TLS connection.",
        factory=SubmissionService,
    )
    Submissions: SubmissionsService = opt(
        "SMTP over TLS for submitting email, by email applications. Requires a TLS config.",
        factory=SubmissionsService,
    )
    IMAP: IMAPService = opt(
        "IMAP for reading email, by email applications. Starts out in plain text, can be upgraded "
        "to TLS with the STARTTLS command. Prefer using IMAPS instead which is always a TLS "
        "connection.",
        factory=IMAPService,
    )
    IMAPS: IMAPSService = opt(
        "IMAP over TLS for reading email, by email applications. Requires a TLS config.",
        factory=IMAPSService,
    )
    AccountHTTP: WebService = opt(
        "Account web interface, for email users wanting to change their accounts, e.g. set new "
        "password, set new delivery rulesets. Default path is /.",
        factory=WebService,
    )
    AccountHTTPS: WebService = opt(
        "Account web interface listener like AccountHTTP, but for HTTPS. Requires a TLS config.",
        factory=WebService,
    )
    AdminHTTP: WebService = opt(
        "Admin web interface, for managing domains, accounts, etc. Default path is /admin/. "
        "Preferably only enable on non-public IPs. Hint: use 'ssh -L 8080:localhost:80 "
        "you@yourmachine' and open http://localhost:8080/admin/, or set up a tunnel (e.g. "
        "WireGuard) and add its IP to the mox 'internal' listener.",
        factory=WebService,
    )
    AdminHTTPS: WebService = opt(
        "Admin web interface listener like AdminHTTP, but for HTTPS. Requires a TLS config.",
        factory=WebService,
    )
    WebmailHTTP: WebService = opt(
        "Webmail client, for reading email. Default path is /webmail/.", factory=WebService
    )
    WebmailHTTPS: WebService = opt(
        "Webmail client, like WebmailHTTP, but for HTTPS. Requires a TLS config.",
        factory=WebService,
    )
    WebAPIHTTP: WebService = opt(
        "Like WebAPIHTTPS, but with plain HTTP, without TLS.", factory=WebService
    )
    WebAPIHTTPS: WebService = opt(
        "WebAPI, a simple HTTP/JSON-based API for email, with HTTPS (requires a TLS config). "
        "Default path is /webapi/.",
        factory=WebService,
    )
    MetricsHTTP: MetricsService = opt(
        "Serve prometheus metrics, for monitoring. You should not enable this on a public IP.",
        factory=MetricsService,
    )
    PprofHTTP: PprofService = opt(
        "Serve /debug/pprof/ for profiling a running mox instance. Do not enable this on a public IP!",
        factory=PprofService,
    )
    AutoconfigHTTPS: AutoHTTPSService = opt(
        "Serve autoconfiguration/autodiscovery to simplify configuring email applications, will "
        "use port 443. Requires a TLS config.",
        factory=AutoHTTPSService,
    )
    MTASTSHTTPS: AutoHTTPSService = opt(
        "Serve MTA-STS policies describing SMTP TLS requirements. Requires a TLS config.",
        factory=AutoHTTPSService,
    )
    WebserverHTTP: WebserverHTTPService = opt(
        "All configured WebHandlers will serve on an enabled listener.",
        factory=WebserverHTTPService,
    )
    WebserverHTTPS: WebserverHTTPSService = opt(
        "All configured WebHandlers will serve on an enabled listener. Either ACME must be "
        "configured, or for each WebHandler domain a TLS certificate must be configured.",
        factory=WebserverHTTPSService,
    )

    # Default port per service key (mox's config.Port fallbacks).
    DEFAULT_PORTS: ClassVar[dict[str, int]] = {
        "SMTP": 25,
        "Submission": 587,
        "Submissions": 465,
        "IMAP": 143,
        "IMAPS": 993,
        "AccountHTTP": 80,
        "AccountHTTPS": 443,
        "AdminHTTP": 80,
        "AdminHTTPS": 443,
        "WebmailHTTP": 80,
        "WebmailHTTPS": 443,
        "WebAPIHTTP": 80,
        "WebAPIHTTPS": 443,
        "MetricsHTTP": 8010,
        "PprofHTTP": 8011,
        "AutoconfigHTTPS": 443,
        "MTASTSHTTPS": 443,
        "WebserverHTTP": 80,
        "WebserverHTTPS": 443,
    }
    # Default path per web service key.
    DEFAULT_PATHS: ClassVar[dict[str, str]] = {
        "AccountHTTP": "/",
        "AccountHTTPS": "/",
        "AdminHTTP": "/admin/",
        "AdminHTTPS": "/admin/",
        "WebmailHTTP": "/webmail/",
        "WebmailHTTPS": "/webmail/",
        "WebAPIHTTP": "/webapi/",
        "WebAPIHTTPS": "/webapi/",
    }
    WEB_SERVICE_KEYS: ClassVar[tuple[str, ...]] = tuple(DEFAULT_PATHS)

    def enabled(self, key: str) -> bool:
        """Whether service ``key`` (e.g. ``"SMTP"``, ``"WebAPIHTTP"``) is enabled."""
        return bool(getattr(self, key).Enabled)

    def port(self, key: str) -> int:
        """Effective port of service ``key``: configured, else mox's default."""
        return int(getattr(self, key).Port) or self.DEFAULT_PORTS[key]

    def path(self, key: str) -> str:
        """Effective path of web service ``key``, always ending in ``/``."""
        svc: WebService = getattr(self, key)
        return svc.effective_path(self.DEFAULT_PATHS[key])

    @property
    def smtp_max_message_size(self) -> int:
        """Effective maximum message size (104857600 unless configured)."""
        return self.SMTPMaxMessageSize if self.SMTPMaxMessageSize > 0 else DEFAULT_MAX_MSG_SIZE


@dataclass
class Postmaster:
    Account: str = req("", "")
    Mailbox: str = req("E.g. Postmaster or Inbox.", "")


@dataclass
class HostTLSRPT:
    Account: str = req("Account to deliver TLS reports to.", "")
    Mailbox: str = req("Mailbox to deliver TLS reports to.", "")
    Localpart: str = req("Localpart at hostname to accept TLS reports at.", "")


@dataclass
class SpecialUseMailboxes:
    Sent: str = opt("", "")
    Archive: str = opt("", "")
    Trash: str = opt("", "")
    Draft: str = opt("", "")
    Junk: str = opt("", "")


@dataclass
class InitialMailboxes:
    SpecialUse: SpecialUseMailboxes = opt(
        "Special-use roles to mailbox to create.", factory=SpecialUseMailboxes
    )
    Regular: list[str] = opt("Regular, non-special-use mailboxes to create.", factory=list)


@dataclass
class SMTPAuth:
    Username: str = req("", "")
    Password: str = req("", "")
    Mechanisms: list[str] = opt("Allowed authentication mechanisms.", factory=list)


@dataclass
class TransportSMTP:
    Host: str = req("Host name to connect to and for verifying its TLS certificate.", "")
    Port: int = opt("If unset or 0, the default port for submission(s)/smtp is used.", 0)
    STARTTLSInsecureSkipVerify: bool = opt("", False)
    NoSTARTTLS: bool = opt("", False)
    Auth: SMTPAuth | None = opt("If set, authentication credentials for the remote server.", None)


@dataclass
class TransportSocks:
    Address: str = req("Address of SOCKS proxy, of the form host:port or ip:port.", "")
    RemoteIPs: list[str] = req("IP addresses connections from the SOCKS server will originate from.", factory=list)
    RemoteHostname: str = req("Hostname belonging to RemoteIPs.", "")


@dataclass
class TransportDirect:
    DisableIPv4: bool = opt("", False)
    DisableIPv6: bool = opt("", False)


@dataclass
class TransportFail:
    SMTPCode: int = opt(
        "SMTP error code and optional enhanced error code to use for the failure. If empty, 554 "
        "is used (transaction failed).",
        0,
    )
    SMTPMessage: str = opt("Message to include for the rejection. It will be shown in the DSN.", "")

    @property
    def smtp_code(self) -> int:
        return self.SMTPCode or 554


@dataclass
class Transport:
    Submissions: TransportSMTP | None = opt("Submission SMTP over a TLS connection.", None)
    Submission: TransportSMTP | None = opt("Submission SMTP over a plain TCP connection.", None)
    SMTP: TransportSMTP | None = opt("SMTP over a plain connection (possibly with STARTTLS).", None)
    Socks: TransportSocks | None = opt("Like direct delivery, through a SOCKS proxy.", None)
    Direct: TransportDirect | None = opt("Like direct delivery, with tweaks.", None)
    Fail: TransportFail | None = opt("Immediately fails the delivery attempt.", None)


@dataclass
class Static:
    """mox.conf."""

    DataDir: str = req(
        SCONF_NOTE + "Directory where all data is stored, e.g. queue, accounts and messages, ACME "
        "TLS certs/keys. If this is a relative path, it is relative to the directory of mox.conf.",
        "",
    )
    LogLevel: str = req(
        "Default log level, one of: error, info, debug, trace, traceauth, tracedata. Trace logs "
        "SMTP and IMAP protocol transcripts, with traceauth also messages with passwords, and "
        "tracedata on top of that also the full data exchanges (full messages), which can be a "
        "large amount of data.",
        "",
    )
    PackageLogLevels: dict[str, str] = opt("Overrides of log level per package.", factory=dict)
    User: str = opt(
        "User to switch to after binding to all sockets as root. Default: mox. If the value is "
        "not a known user, it is parsed as integer and used as uid and gid.",
        "",
    )
    NoFixPermissions: bool = opt("", False)
    Hostname: str = req("Full hostname of system, e.g. mail.<domain>", "")
    CheckUpdates: bool = opt("", False)
    Pedantic: bool = opt(
        "In pedantic mode protocol violations (that happen in the wild) for SMTP/IMAP/etc result "
        "in errors instead of accepting such behaviour.",
        False,
    )
    TLS: GlobalTLS = opt(
        "Global TLS configuration, e.g. for additional Certificate Authorities. Used for outgoing "
        "SMTP connections, HTTPS requests.",
        factory=GlobalTLS,
    )
    ACME: dict[str, ACME] = opt("Automatic TLS configuration with ACME.", factory=dict)
    AdminPasswordFile: str = opt(
        "File containing hash of admin password, for authentication in the web admin pages (if "
        "enabled).",
        "",
    )
    Listeners: dict[str, Listener] = req(
        "Listeners are groups of IP addresses and services enabled on those IP addresses, such as "
        "SMTP/IMAP or internal endpoints for administration or Prometheus metrics. All listeners "
        "with SMTP/IMAP services enabled will serve all configured domains. If the listener is "
        "named 'public', it will get a few helpful additional configuration checks, for acme "
        "automatic tls certificates and monitoring of ips in dnsbls if those are configured.",
        factory=dict,
    )
    Postmaster: Postmaster = req(
        "Destination for emails delivered to postmaster addresses: a plain 'postmaster' without "
        "domain, 'postmaster@<hostname>' (also for each listener with SMTP enabled), and as "
        "fallback for each domain without explicitly configured postmaster destination.",
        factory=Postmaster,
    )
    HostTLSRPT: HostTLSRPT = opt("Destination for per-host TLS reports (TLSRPT).", factory=HostTLSRPT)
    InitialMailboxes: InitialMailboxes = opt("Mailboxes to create for new accounts.", factory=InitialMailboxes)
    DefaultMailboxes: list[str] = opt("Deprecated in favor of InitialMailboxes.", factory=list)
    Transports: dict[str, Transport] = opt(
        "Transport are mechanisms for delivering messages.", factory=dict
    )
    NoOutgoingDMARCReports: bool = opt("Do not send DMARC reports (aggregate only).", False)
    NoOutgoingTLSReports: bool = opt("Do not send TLS reports.", False)
    OutgoingTLSReportsForAllSuccess: bool = opt("", False)
    QuotaMessageSize: int = opt(
        "Default maximum total message size in bytes for each individual account.", 0
    )
    Plugins: list[str] | None = opt(
        "moxtrio extension: plugins to load, by entry-point name or module path. If absent, all "
        "first-party plugins are loaded.",
        None,
    )


# --- domains.conf -----------------------------------------------------------


@dataclass
class Canonicalization:
    HeaderRelaxed: bool = req("", False)
    BodyRelaxed: bool = req("", False)


@dataclass
class Selector:
    Hash: str = opt("sha256 (default) or (older, not recommended) sha1.", "")
    Canonicalization: Canonicalization = opt("", factory=Canonicalization)
    Headers: list[str] = opt("Headers to sign with DKIM.", factory=list)
    DontSealHeaders: bool = opt("", False)
    Expiration: str = opt(
        "Period a signature is valid after signing, as duration, e.g. 72h. The period should be "
        "enough for delivery at the final destination, potentially with several hops/relays. In "
        "the order of days at least.",
        "",
    )
    PrivateKeyFile: str = req("Either an RSA or ed25519 private key file in PKCS8 PEM form.", "")

    DEFAULT_HEADERS: ClassVar[tuple[str, ...]] = (
        "From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date",
        "Message-Id", "Content-Type",
    )

    @property
    def hash(self) -> str:
        return (self.Hash or "sha256").lower()

    @property
    def headers(self) -> list[str]:
        return list(self.Headers) if self.Headers else list(self.DEFAULT_HEADERS)


@dataclass
class DKIM:
    Selectors: dict[str, Selector] = req(
        "Emails can be DKIM signed. Config parameters are per selector. A DNS record must be "
        "created for each selector. Add the name to Sign to use the selector for signing messages.",
        factory=dict,
    )
    Sign: list[str] = opt("List of selectors that emails will be signed with.", factory=list)


@dataclass
class DMARC:
    Localpart: str = req("Address-part before the @ that accepts DMARC reports.", "")
    Domain: str = opt("Alternative domain for reporting address.", "")
    Account: str = req("Account to deliver to.", "")
    Mailbox: str = req("Mailbox to deliver to, e.g. DMARC.", "")


@dataclass
class MTASTS:
    PolicyID: str = req("", "")
    Mode: str = req("", "")
    MaxAge: datetime.timedelta = req("", factory=_zero_duration)
    MX: list[str] = opt("", factory=list)


@dataclass
class TLSRPT:
    Localpart: str = req("Address-part before the @ that accepts TLSRPT reports.", "")
    Domain: str = opt("Alternative domain for reporting address.", "")
    Account: str = req("Account to deliver to.", "")
    Mailbox: str = req("Mailbox to deliver to, e.g. TLSRPT.", "")


@dataclass
class Route:
    FromDomain: list[str] = opt(
        "Matches if the envelope from domain matches one of the configured domains, or if the "
        "list is empty. If a domain starts with a dot, prefixes of the domain also match.",
        factory=list,
    )
    ToDomain: list[str] = opt(
        "Like FromDomain, but matching against the envelope to domain.", factory=list
    )
    MinimumAttempts: int = opt(
        "Matches if at least this many deliveries have already been attempted.", 0
    )
    Transport: str = req("", "")


@dataclass
class Alias:
    Addresses: list[str] = req("Expanded addresses to deliver to.", factory=list)
    PostPublic: bool = opt("If true, anyone can send messages to the list.", False)
    ListMembers: bool = opt("If true, members can see addresses of members.", False)
    AllowMsgFrom: bool = opt(
        "If true, members are allowed to send messages with this alias address in the message "
        "From header.",
        False,
    )


@dataclass
class Domain:
    Disabled: bool = opt("Disabled domains can be useful during/before migrations.", False)
    Description: str = opt("Free-form description of domain.", "")
    ClientSettingsDomain: str = opt("Hostname for client settings instead of the mail server hostname.", "")
    LocalpartCatchallSeparator: str = opt(
        "If not empty, only the string before the separator is used to for email delivery "
        "decisions. For example, if set to \"+\", you+anything@example.com will be delivered to "
        "you@example.com.",
        "",
    )
    LocalpartCatchallSeparators: list[str] = opt(
        "Similar to LocalpartCatchallSeparator, but in case multiple are needed. For example both "
        "\"+\" and \"-\". Only of one LocalpartCatchallSeparator or LocalpartCatchallSeparators "
        "can be set. If set, the first separator is used to make unique addresses for outgoing "
        "SMTP connections with FromIDLoginAddresses.",
        factory=list,
    )
    LocalpartCaseSensitive: bool = opt(
        "If set, upper/lower case is relevant for email delivery.", False
    )
    DKIM: DKIM = opt(
        "With DKIM signing, a domain is taking responsibility for (content of) emails it sends, "
        "letting receiving mail servers build up a (hopefully positive) reputation of the domain, "
        "which can help with mail delivery.",
        factory=DKIM,
    )
    DMARC: DMARC | None = opt("With DMARC, a domain publishes, in DNS, a policy.", None)
    MTASTS: MTASTS | None = opt("MTA-STS policy for the domain.", None)
    TLSRPT: TLSRPT | None = opt("With TLSRPT a domain specifies in DNS where reports go.", None)
    Routes: list[Route] = opt("Routes for delivering outgoing messages through the queue.", factory=list)
    Aliases: dict[str, Alias] = opt(
        "Aliases that cause messages to be delivered to one or more locally configured addresses.",
        factory=dict,
    )

    @property
    def catchall_separators(self) -> list[str]:
        """Effective separator list."""
        if self.LocalpartCatchallSeparators:
            return list(self.LocalpartCatchallSeparators)
        if self.LocalpartCatchallSeparator:
            return [self.LocalpartCatchallSeparator]
        return []


@dataclass
class OutgoingWebhook:
    URL: str = req("URL to POST webhooks.", "")
    Authorization: str = opt(
        "If not empty, value of Authorization header to add to HTTP requests.", ""
    )
    Events: list[str] = opt(
        "Events to send outgoing delivery notifications for. If absent, all events are sent. "
        "Valid values: delivered, suppressed, delayed, failed, relayed, expanded, canceled, "
        "unrecognized.",
        factory=list,
    )

    EVENTS: ClassVar[tuple[str, ...]] = (
        "delivered", "suppressed", "delayed", "failed", "relayed", "expanded", "canceled",
        "unrecognized",
    )

    #: moxtrio's extension events: sent only when listed in Events, so a mox
    #: client (which lists none of them) never sees an event it does not know.
    EXTENSION_EVENTS: ClassVar[tuple[str, ...]] = ("complaint",)

    def wants(self, event: str) -> bool:
        """Whether webhooks for ``event`` are sent (empty Events = all of mox's)."""
        if event in self.EXTENSION_EVENTS:
            return event in self.Events
        return not self.Events or event in self.Events


@dataclass
class IncomingWebhook:
    URL: str = req("URL to POST webhooks to for incoming deliveries over SMTP.", "")
    Authorization: str = opt(
        "If not empty, value of Authorization header to add to HTTP requests.", ""
    )


@dataclass
class SubjectPass:
    Period: datetime.timedelta = req(
        "How long unique values are accepted after generating, e.g. 12h.", factory=_zero_duration
    )


@dataclass
class AutomaticJunkFlags:
    Enabled: bool = req(
        "If enabled, junk/nonjunk flags will be set automatically if they match some of the "
        "regular expressions. When two of the three mailbox regular expressions are set, the "
        "remaining one will match all unmatched messages. Messages are matched in the order "
        "'junk', 'neutral', 'not junk', and the search stops on the first match. Mailboxes are "
        "lowercased before matching.",
        False,
    )
    JunkMailboxRegexp: str = opt("Example: ^(junk|spam).", "")
    NeutralMailboxRegexp: str = opt(
        "Example: ^(inbox|introbox|neutral|postmaster|dmarc|tlsrpt|rejects), and you may wish to "
        "add trash depending on how you use it, or leave this empty.",
        "",
    )
    NotJunkMailboxRegexp: str = opt("Example: .* or an empty string.", "")


@dataclass
class JunkParams:
    Onegrams: bool = opt("Track ham/spam ranking for single words.", False)
    Twograms: bool = opt("Track ham/spam ranking for each two consecutive words.", False)
    Threegrams: bool = opt("Track ham/spam ranking for each three consecutive words.", False)
    MaxPower: float = req(
        "Maximum power a word (combination) can have. If spaminess is 0.99, and max power is 0.1, "
        "spaminess of the word will be set to 0.9. Similar for ham words.",
        0.0,
    )
    TopWords: int = req(
        "Number of most spammy/hammy words to use for calculating probability. E.g. 10.", 0
    )
    IgnoreWords: float = opt(
        "Ignore words that are this much away from 0.5 haminess/spaminess. E.g. 0.1, causing "
        "word (combinations) of 0.4 to 0.6 to be ignored.",
        0.0,
    )
    RareWords: int = opt(
        "Occurrences in word database until a word is considered rare and its influence in "
        "calculating probability reduced. E.g. 1 or 2.",
        0,
    )


@dataclass
class JunkFilter:
    Threshold: float = req(
        "Approximate spaminess score between 0 and 1 above which emails are rejected as spam. "
        "Each delivery attempt adds a little noise to make it slightly harder for spammers to "
        "identify words that strongly indicate non-spaminess and use it to bypass the filter. "
        "E.g. 0.95.",
        0.0,
    )
    Params: JunkParams = req("", factory=JunkParams)


@dataclass
class Ruleset:
    SMTPMailFromRegexp: str = opt("", "")
    MsgFromRegexp: str = opt("", "")
    VerifiedDomain: str = opt("", "")
    HeadersRegexp: dict[str, str] = opt("", factory=dict)
    IsForward: bool = opt("", False)
    ListAllowDomain: str = opt("", "")
    AcceptRejectsToMailbox: str = opt("", "")
    Mailbox: str = req("Mailbox to deliver to if this ruleset matches.", "")
    Comment: str = opt("Free-form comments.", "")


@dataclass
class Destination:
    Mailbox: str = opt("Mailbox to deliver to if none of Rulesets match. Default: Inbox.", "")
    Rulesets: list[Ruleset] = opt("Delivery rules based on message and SMTP transaction.", factory=list)
    SMTPError: str = opt(
        "If non-empty, incoming delivery attempts to this destination will be rejected during "
        "SMTP RCPT TO with this error response line.",
        "",
    )
    MessageAuthRequiredSMTPError: str = opt(
        "If non-empty, an additional DMARC-like message authentication check is done.", ""
    )
    FullName: str = opt(
        "Full name to use in message From header when composing messages coming from this address "
        "with webmail.",
        "",
    )

    @property
    def mailbox(self) -> str:
        """Effective mailbox: configured, else ``Inbox``."""
        return self.Mailbox or "Inbox"


@dataclass
class Account:
    OutgoingWebhook: OutgoingWebhook | None = opt(
        "Webhooks for events about outgoing deliveries.", None
    )
    IncomingWebhook: IncomingWebhook | None = opt(
        "Webhooks for events about incoming deliveries over SMTP.", None
    )
    FromIDLoginAddresses: list[str] = opt(
        "Login addresses that cause outgoing email to be sent with SMTP MAIL FROM addresses with a "
        "unique id after the localpart catchall separator (which must be enabled when addresses "
        "are specified here). Any delivery status notifications (DSN, e.g. for bounces), can be "
        "related to the original message and recipient with unique id's. You can login to an "
        "account with any valid email address, including variants with the localpart catchall "
        "separator. You can use this mechanism to both send outgoing messages with and without "
        "unique fromid for a given email address. With the webapi and webmail, a unique id will "
        "be generated. For submission, the id from the SMTP MAIL FROM command is used if present, "
        "and a unique id is generated otherwise.",
        factory=list,
    )
    KeepRetiredMessagePeriod: datetime.timedelta = opt(
        "Period to keep messages retired from the queue (delivered or failed) around. Keeping "
        "retired messages is useful for maintaining the suppression list for transactional "
        "email, for matching incoming DSNs to sent messages, and for debugging. The time at which "
        "to clean up (remove) is calculated at retire time. E.g. 168h (1 week).",
        factory=_zero_duration,
    )
    KeepRetiredWebhookPeriod: datetime.timedelta = opt(
        "Period to keep webhooks retired from the queue (delivered or failed) around. Useful for "
        "debugging. The time at which to clean up (remove) is calculated at retire time. E.g. "
        "168h (1 week).",
        factory=_zero_duration,
    )
    LoginDisabled: str = opt(
        "If non-empty, login attempts on all protocols (e.g. SMTP/IMAP, web interfaces) is "
        "rejected with this error message. Useful during migrations. Incoming deliveries for "
        "addresses of this account are still accepted as normal.",
        "",
    )
    Domain: str = req(
        "Default domain for account. Deprecated behaviour: If a destination is not a full address "
        "but only a localpart, this domain is added to form a full address.",
        "",
    )
    Description: str = opt("Free form description, e.g. full name or alternative contact info.", "")
    FullName: str = opt(
        "Full name, to use in message From header when composing messages in webmail. Can be "
        "overridden per destination.",
        "",
    )
    Destinations: dict[str, Destination] = opt(
        "Destinations, keys are email addresses (with IDNA domains). All destinations are allowed "
        "for logging in with IMAP/SMTP/webmail. If no destinations are configured, the account "
        "can not login. If the address is of the form '@domain', i.e. with localpart missing, it "
        "serves as a catchall for the domain, matching all messages that are not explicitly "
        "configured. Deprecated behaviour: If the address is not a full address but a localpart, "
        "it is combined with Domain to form a full address.",
        factory=dict,
    )
    SubjectPass: SubjectPass = opt(
        "If configured, messages classified as weakly spam are rejected with instructions to "
        "retry delivery, but this time with a signed token added to the subject.",
        factory=SubjectPass,
    )
    QuotaMessageSize: int = opt(
        "Default maximum total message size in bytes for the account, overriding any globally "
        "configured default maximum size if non-zero. A negative value can be used to have no "
        "limit in case there is a limit by default.",
        0,
    )
    RejectsMailbox: str = opt(
        "Mail that looks like spam will be rejected, but a copy can be stored temporarily in a "
        "mailbox, e.g. Rejects. If mail isn't coming in when you expect, you can look there. The "
        "mail still isn't accepted, so the remote mail server may retry (hopefully, if "
        "legitimate), or give up (hopefully, if indeed a spammer). Messages are automatically "
        "removed from this mailbox, so do not set it to a mailbox that has messages you want to "
        "keep.",
        "",
    )
    KeepRejects: bool = opt(
        "Don't automatically delete mail in the RejectsMailbox listed above.", False
    )
    AutomaticJunkFlags: AutomaticJunkFlags = opt(
        "Automatically set $Junk and $NotJunk flags based on mailbox messages are "
        "delivered/moved/copied to. Email clients typically have too limited functionality to "
        "conveniently set these flags, especially $NonJunk, but they can all move messages to a "
        "different mailbox, so this helps them.",
        factory=AutomaticJunkFlags,
    )
    JunkFilter: JunkFilter | None = opt(
        "Content-based filtering, using the junk-status of individual messages to rank words in "
        "such messages as spam or ham. It is recommended you always set the applicable "
        "(non)-junk status on messages, and that you do not empty your Trash because those "
        "messages contain valuable ham/spam training information.",
        None,
    )
    MaxOutgoingMessagesPerDay: int = opt(
        "Maximum number of outgoing messages for this account in a 24 hour window. This limits "
        "the damage to recipients and the reputation of this mail server in case of account "
        "compromise. Default 1000.",
        0,
    )
    MaxFirstTimeRecipientsPerDay: int = opt(
        "Maximum number of first-time recipients in outgoing messages for this account in a 24 "
        "hour window. This limits the damage to recipients and the reputation of this mail "
        "server in case of account compromise. Default 200.",
        0,
    )
    NoFirstTimeSenderDelay: bool = opt(
        "Do not apply a delay to SMTP connections before accepting an incoming message from a "
        "first-time sender. Can be useful for accounts that sends automated responses and want "
        "instant replies.",
        False,
    )
    NoCustomPassword: bool = opt(
        "If set, this account cannot set a password of their own choice, but can only set a new "
        "randomly generated password.",
        False,
    )
    Routes: list[Route] = opt(
        "Routes for delivering outgoing messages through the queue.", factory=list
    )
    IMAPCapabilitiesDisabled: list[str] = opt("IMAP capabilities to not announce.", factory=list)
    Introbox: str = opt("Mailbox for messages from first-time senders.", "")
    WebhookSigningSecret: str = opt(
        "moxtrio extension: if set, outgoing webhook requests carry an HMAC signature made with "
        "this secret. Off by default.",
        "",
    )

    @property
    def max_outgoing_messages_per_day(self) -> int:
        return self.MaxOutgoingMessagesPerDay or DEFAULT_MAX_OUTGOING_MESSAGES_PER_DAY

    @property
    def max_first_time_recipients_per_day(self) -> int:
        return self.MaxFirstTimeRecipientsPerDay or DEFAULT_MAX_FIRST_TIME_RECIPIENTS_PER_DAY


@dataclass
class WebStatic:
    StripPrefix: str = opt(
        "Path to strip from the request URL before evaluating to a local path. If the requested "
        "URL path does not start with this prefix and ContinueNotFound it is considered "
        "non-matching and next WebHandlers are tried. If ContinueNotFound is not set, a file not "
        "found (404) is returned in that case.",
        "",
    )
    Root: str = req(
        "Directory to serve files from for this handler. Keep in mind that relative paths are "
        "relative to the working directory of mox.",
        "",
    )
    ListFiles: bool = opt(
        "If set, and a directory is requested, and no index.html is present that can be served, "
        "a file listing is returned. Results in 403 if ListFiles is not set. If a directory is "
        "requested and the URL does not end with a slash, the response is a redirect to the path "
        "with trailing slash.",
        False,
    )
    ContinueNotFound: bool = opt("", False)
    ResponseHeaders: dict[str, str] = opt("Headers to add to the response.", factory=dict)


@dataclass
class WebRedirect:
    BaseURL: str = opt("Base URL to redirect to.", "")
    OrigPathRegexp: str = opt("Regular expression for matching path.", "")
    ReplacePath: str = opt("Replacement path for destination URL based on OrigPathRegexp.", "")
    StatusCode: int = opt("Status code to use in redirect, e.g. 307. Default 308.", 0)


@dataclass
class WebForward:
    StripPath: bool = opt("", False)
    URL: str = req("URL to forward HTTP requests to, e.g. http://127.0.0.1:8123/base.", "")
    ResponseHeaders: dict[str, str] = opt("Headers to add to the response.", factory=dict)


@dataclass
class WebInternal:
    BasePath: str = req("Path to use as root of internal service, e.g. /webmail/.", "")
    Service: str = req("Name of the service, values: admin, account, webmail, webapi.", "")


@dataclass
class WebHandler:
    LogName: str = opt("Name to use in logging and metrics.", "")
    Domain: str = req(
        "Both Domain and PathRegexp must match for this WebHandler to match a request. Exactly "
        "one of WebStatic, WebRedirect, WebForward, WebInternal must be set.",
        "",
    )
    PathRegexp: str = req(
        "Regular expression matched against request path, must always start with ^ to ensure "
        "matching from the start of the path. The matching prefix can optionally be stripped by "
        "WebForward. The regular expression does not have to end with $.",
        "",
    )
    DontRedirectPlainHTTP: bool = opt(
        "If set, plain HTTP requests are not automatically permanently redirected (308) to HTTPS. "
        "If you don't have a HTTPS webserver configured, set this to true.",
        False,
    )
    Compress: bool = opt("Transparently compress responses (currently with gzip).", False)
    WebStatic: WebStatic | None = opt("Serve static files.", None)
    WebRedirect: WebRedirect | None = opt("Redirect requests to configured URL.", None)
    WebForward: WebForward | None = opt("Forward requests to another webserver, i.e. reverse proxy.", None)
    WebInternal: WebInternal | None = opt(
        "Pass request to internal service, like webmail, webapi, etc.", None
    )


@dataclass
class Dynamic:
    """domains.conf."""

    Domains: dict[str, Domain] = req(
        SCONF_NOTE + "Domains for which email is accepted. For internationalized domains, use "
        "their IDNA names in UTF-8.",
        factory=dict,
    )
    Accounts: dict[str, Account] = req(
        "Accounts represent mox users, each with a password and email address(es) to which email "
        "can be delivered (possibly at different domains). Each account has its own on-disk "
        "directory holding its messages and index database. An account name is not an email "
        "address.",
        factory=dict,
    )
    WebDomainRedirects: dict[str, str] = opt(
        "Redirect all requests from domain (key) to domain (value).", factory=dict
    )
    WebHandlers: list[WebHandler] = opt(
        "Handle webserver requests by serving static files, redirecting, reverse-proxying HTTP(s) "
        "or passing the request to an internal service. The first matching WebHandler will "
        "handle the request. Built-in system handlers, e.g. for ACME validation, autoconfig and "
        "mta-sts always run first. Built-in handlers for admin, account, webmail and webapi are "
        "evaluated after all handlers, including webhandlers (allowing for overrides of internal "
        "services for some domains). If no handler matches, the response status code is file not "
        "found (404). If webserver features are missing, forward the requests to an application "
        "that provides the needed functionality itself.",
        factory=list,
    )
    Routes: list[Route] = opt(
        "Routes for delivering outgoing messages through the queue.", factory=list
    )
    MonitorDNSBLs: list[str] = opt(
        "DNS blocklists to periodically check with if IPs we send from are present.", factory=list
    )
