//! Where a RabbitMQ trigger connects: the protocol chosen from `host`, the AMQP URI (with
//! `vhostName` and `username`/`password` applied as KEDA applies them) and the management API
//! URL. Pure string handling, tested without a broker.

use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use scaler_core::Secret;

/// Which API the scaler reads the queue through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// AMQP 0-9-1: a passive `queue.declare` returns the ready message count.
    Amqp,
    /// The management plugin's HTTP API: counts and rates.
    Http,
}

impl Protocol {
    /// The name written in `protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Amqp => "amqp",
            Protocol::Http => "http",
        }
    }
}

/// The scheme of a URL as Go's `url.Parse` reads it (lower-cased), or `""` when there is none.
fn scheme(url: &str) -> &str {
    let Some(colon) = url.find(':') else {
        return "";
    };
    let candidate = &url[..colon];
    let mut chars = candidate.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if valid { candidate } else { "" }
}

/// KEDA's `protocol: auto`: the protocol named by the host URL's scheme.
pub fn protocol_from_host(host: &str) -> Result<Protocol, String> {
    match scheme(host).to_ascii_lowercase().as_str() {
        "amqp" | "amqps" => Ok(Protocol::Amqp),
        "http" | "https" => Ok(Protocol::Http),
        other => Err(format!("unknown host URL scheme: `{other}`")),
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid URL escape {:?}", &s[i..(i + 3).min(s.len())]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "URL escapes are not valid UTF-8".to_owned())
}

/// Go's `url.QueryEscape`: everything but `A-Z a-z 0-9 - _ . ~` is `%XX`-escaped and a space
/// becomes `+`. KEDA builds metric names with it, so ours must match byte for byte.
pub fn query_escape(s: &str) -> String {
    escape(s, "+")
}

/// Like [`query_escape`] but a space is `%20`, which is what a URL path needs.
pub fn path_escape(s: &str) -> String {
    escape(s, "%20")
}

fn escape(s: &str, space: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push_str(space),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Username and password given as parameters (`username`/`password`), which override those in
/// the host URL.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// User name.
    pub username: Secret,
    /// Password.
    pub password: Secret,
}

/// The AMQP URI of `host` as the Go client (`amqp091-go` `ParseURI`) reads it — default host
/// `localhost`, port 5672/5671, user `guest:guest`, vhost `/` when the path is empty or `/` — with
/// `vhostName` and the credentials applied on top, as KEDA does.
pub fn amqp_uri(
    host: &str,
    vhost_name: Option<&str>,
    credentials: Option<&Credentials>,
) -> Result<AMQPUri, String> {
    let url = url::Url::parse(host).map_err(|e| e.to_string())?;
    let scheme = match url.scheme() {
        "amqp" => AMQPScheme::AMQP,
        "amqps" => AMQPScheme::AMQPS,
        _ => return Err("AMQP scheme must be either 'amqp://' or 'amqps://'".to_owned()),
    };
    let host_name = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .map(percent_decode)
        .transpose()?
        .unwrap_or_else(|| "localhost".to_owned());
    let port = url.port().unwrap_or_else(|| scheme.default_port());
    let mut userinfo = AMQPUserInfo::default();
    if !url.username().is_empty() {
        userinfo.username = percent_decode(url.username())?;
    }
    if let Some(password) = url.password() {
        userinfo.password = percent_decode(password)?;
    }
    let path = percent_decode(url.path())?;
    let mut vhost = match path.strip_prefix('/') {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        Some(_) => "/".to_owned(),
        None if path.is_empty() => "/".to_owned(),
        None => path,
    };
    if let Some(name) = vhost_name {
        vhost = name.to_owned();
    }
    if let Some(c) = credentials {
        userinfo = AMQPUserInfo {
            username: c.username.expose().to_owned(),
            password: c.password.expose().to_owned(),
        };
    }
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    Ok(AMQPUri {
        scheme,
        authority: AMQPAuthority {
            userinfo,
            host: host_name,
            port,
        },
        vhost,
        query: AMQPQueryString {
            frame_max: query("frame_max").and_then(|v| v.parse().ok()),
            channel_max: query("channel_max").and_then(|v| v.parse().ok()),
            heartbeat: query("heartbeat").and_then(|v| v.parse().ok()),
            connection_timeout: query("connection_timeout").and_then(|v| v.parse().ok()),
            auth_mechanism: None,
        },
    })
}

/// KEDA's `getVhostAndPathFromURL`: the last path segment of the management URL is the vhost
/// (already escaped), what precedes it is a path prefix (a reverse proxy's, say); `vhostName`
/// overrides the vhost; an empty vhost is the default one, `/%2F`.
pub fn vhost_and_prefix(raw_path: &str, vhost_name: Option<&str>) -> (String, String) {
    let parts: Vec<&str> = raw_path.split('/').collect();
    let last = parts.last().copied().unwrap_or("");
    let mut vhost = format!("/{last}");
    let prefix_parts: Vec<&str> = parts[..parts.len().saturating_sub(1)]
        .iter()
        .copied()
        .filter(|p| !p.is_empty())
        .collect();
    let prefix = if prefix_parts.is_empty() {
        String::new()
    } else {
        format!("/{}", prefix_parts.join("/"))
    };
    if let Some(name) = vhost_name {
        vhost = format!("/{}", query_escape(name));
    }
    if vhost == "/" {
        vhost = "/%2F".to_owned();
    }
    (vhost, prefix)
}

/// The management API endpoint of a trigger: base URL without credentials, and the basic-auth
/// credentials to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Management {
    /// `scheme://host:port<prefix>/api/queues<vhost>`, no trailing slash.
    pub queues_url: String,
    /// `scheme://host:port`, which identifies the HTTP client to share.
    pub origin: String,
    /// Basic-auth credentials: the `username`/`password` parameters, else the URL's userinfo.
    pub credentials: Option<Credentials>,
}

/// The management API endpoint for `host` (an `http(s)://` URL).
pub fn management(
    host: &str,
    vhost_name: Option<&str>,
    credentials: Option<&Credentials>,
) -> Result<Management, String> {
    let url = url::Url::parse(host).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the management API needs an http:// or https:// host, got `{}://`",
            url.scheme()
        ));
    }
    let host_str = url.host_str().unwrap_or_default();
    let origin = match url.port() {
        Some(port) => format!("{}://{host_str}:{port}", url.scheme()),
        None => format!("{}://{host_str}", url.scheme()),
    };
    let (vhost, prefix) = vhost_and_prefix(url.path(), vhost_name);
    let credentials = match credentials {
        Some(c) => Some(c.clone()),
        None if !url.username().is_empty() || url.password().is_some() => Some(Credentials {
            username: Secret::new(percent_decode(url.username())?),
            password: Secret::new(percent_decode(url.password().unwrap_or_default())?),
        }),
        None => None,
    };
    Ok(Management {
        queues_url: format!("{origin}{prefix}/api/queues{vhost}"),
        origin,
        credentials,
    })
}

/// KEDA's `anonymizeRabbitMQError`: masks `user:password@` in a message, in case a client
/// library echoes a URL with credentials.
pub fn anonymize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        // The password runs back to the last ':' and may not contain '/'; the user runs back
        // from there to a space, '/' or ':' and may not be empty.
        let masked = before.rfind(':').and_then(|colon| {
            let password = &before[colon + 1..];
            if password.is_empty() || password.contains('/') {
                return None;
            }
            let user_start = before[..colon].rfind([' ', '/', ':']).map_or(0, |i| i + 1);
            (user_start < colon).then_some(user_start)
        });
        match masked {
            Some(start) => {
                out.push_str(&rest[..start]);
                out.push_str("user:password@");
            }
            None => out.push_str(&rest[..=at]),
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: Secret::new(u),
            password: Secret::new(p),
        }
    }

    #[test]
    fn protocol_follows_the_scheme() {
        assert_eq!(protocol_from_host("amqp://h"), Ok(Protocol::Amqp));
        assert_eq!(protocol_from_host("AMQPS://h"), Ok(Protocol::Amqp));
        assert_eq!(protocol_from_host("http://"), Ok(Protocol::Http));
        assert_eq!(protocol_from_host("https://h:15671/vh"), Ok(Protocol::Http));
        assert_eq!(
            protocol_from_host("something://"),
            Err("unknown host URL scheme: `something`".to_owned())
        );
        assert_eq!(
            protocol_from_host("myHostSecret"),
            Err("unknown host URL scheme: ``".to_owned())
        );
        assert_eq!(
            protocol_from_host("127.0.0.1:5672"),
            Err("unknown host URL scheme: ``".to_owned())
        );
    }

    #[test]
    fn query_escape_is_gos() {
        assert_eq!(query_escape("namespace/name"), "namespace%2Fname");
        assert_eq!(query_escape("a b+c~d.e_f-g"), "a+b%2Bc~d.e_f-g");
        assert_eq!(query_escape("é"), "%C3%A9");
        assert_eq!(path_escape("a b"), "a%20b");
    }

    #[test]
    fn amqp_uri_defaults_and_overrides() {
        let uri =
            amqp_uri("amqp://user:p%40ss@rabbit.example:5673/tenant", None, None).expect("parses");
        assert_eq!(uri.scheme, AMQPScheme::AMQP);
        assert_eq!(uri.authority.host, "rabbit.example");
        assert_eq!(uri.authority.port, 5673);
        assert_eq!(uri.authority.userinfo.username, "user");
        assert_eq!(uri.authority.userinfo.password, "p@ss");
        assert_eq!(uri.vhost, "tenant");

        // Empty path and "/" both mean the default vhost, as in amqp091-go (lapin alone
        // would read "/" as the empty vhost).
        for host in ["amqp://h", "amqp://h/", "amqp://h/%2F"] {
            assert_eq!(amqp_uri(host, None, None).expect("parses").vhost, "/");
        }
        let d = amqp_uri("amqps://", None, None).expect("parses");
        assert_eq!(
            (d.authority.host.as_str(), d.authority.port, d.scheme),
            ("localhost", 5671, AMQPScheme::AMQPS)
        );
        assert_eq!(d.authority.userinfo.username, "guest");

        let o = amqp_uri(
            "amqp://a:b@h:5672/old?heartbeat=10",
            Some("new"),
            Some(&creds("u", "p")),
        )
        .expect("parses");
        assert_eq!(o.vhost, "new");
        assert_eq!(o.authority.userinfo.username, "u");
        assert_eq!(o.authority.userinfo.password, "p");
        assert_eq!(o.query.heartbeat, Some(10));

        let v6 = amqp_uri("amqp://[::1]:5672", None, None).expect("parses");
        assert_eq!(v6.authority.host, "::1");

        assert_eq!(
            amqp_uri("http://h", None, None).err().as_deref(),
            Some("AMQP scheme must be either 'amqp://' or 'amqps://'")
        );
    }

    // KEDA's getVhostAndPathFromURLTestData, every row.
    #[test]
    fn vhost_and_prefix_match_keda() {
        let root = "/%2F";
        let cases: &[(&str, &str, &str, &str)] = &[
            ("myVhost", "", "/myVhost", ""),
            ("/", "", root, ""),
            ("//", "", root, ""),
            ("", "", root, ""),
            ("sub1/myVhost", "", "/myVhost", "/sub1"),
            ("sub1/", "overridenVhost", "/overridenVhost", "/sub1"),
            ("myVhost", "overridenVhost", "/overridenVhost", ""),
            ("sub1/", "", root, "/sub1"),
            ("sub1/", "myVhost", "/myVhost", "/sub1"),
            ("sub1//", "", root, "/sub1"),
            ("sub1/sub2/myVhost", "", "/myVhost", "/sub1/sub2"),
            (
                "sub1/sub2/myVhost",
                "overridenVhost",
                "/overridenVhost",
                "/sub1/sub2",
            ),
            ("sub1/sub2/", "", root, "/sub1/sub2"),
            ("sub1/sub2/", "myVhost", "/myVhost", "/sub1/sub2"),
            ("sub1/myVhost", "overridenVhost", "/overridenVhost", "/sub1"),
            ("sub1/sub2//", "", root, "/sub1/sub2"),
        ];
        for &(raw, name, vhost, prefix) in cases {
            let name = (!name.is_empty()).then_some(name);
            assert_eq!(
                vhost_and_prefix(raw, name),
                (vhost.to_owned(), prefix.to_owned()),
                "{raw:?} {name:?}"
            );
        }
        // vhostName "/" is escaped, as KEDA does.
        assert_eq!(vhost_and_prefix("/x", Some("/")).0, "/%2F");
    }

    #[test]
    fn management_urls() {
        let m = management("http://guest:pa%24s@127.0.0.1:15672/", None, None).expect("parses");
        assert_eq!(m.queues_url, "http://127.0.0.1:15672/api/queues/%2F");
        assert_eq!(m.origin, "http://127.0.0.1:15672");
        let c = m.credentials.expect("from the URL");
        assert_eq!(
            (c.username.expose(), c.password.expose()),
            ("guest", "pa$s")
        );

        let m = management(
            "https://user:x@mq.example/rabbit/tenant-a",
            None,
            Some(&creds("u", "p")),
        )
        .expect("parses");
        assert_eq!(
            m.queues_url,
            "https://mq.example/rabbit/api/queues/tenant-a"
        );
        assert_eq!(
            m.credentials.map(|c| c.username.expose().to_owned()),
            Some("u".to_owned())
        );

        let m = management("http://h:15672/%2F", Some("team a"), None).expect("parses");
        assert_eq!(m.queues_url, "http://h:15672/api/queues/team+a");
        assert_eq!(m.credentials, None);

        assert!(management("amqp://h", None, None).is_err());
    }

    #[test]
    fn anonymize_masks_credentials() {
        assert_eq!(
            anonymize("dial amqp://admin:s3cret@rabbit:5672/vh failed"),
            "dial amqp://user:password@rabbit:5672/vh failed"
        );
        assert_eq!(
            anonymize("error from http://u:p@h/api and amqp://x:y@z"),
            "error from http://user:password@h/api and amqp://user:password@z"
        );
        assert_eq!(anonymize("mail me@example.com"), "mail me@example.com");
        assert_eq!(anonymize("no at sign"), "no at sign");
    }
}
