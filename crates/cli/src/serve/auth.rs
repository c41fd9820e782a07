//! The per-server secret: who may use this studio.
//!
//! At start-up the server draws a token from the operating system's random
//! source (192 bits) and prints it in its URL, as Jupyter does
//! (`http://127.0.0.1:PORT/?token=…`). A browser that opens that URL gets a
//! cookie in exchange (`HttpOnly`, `SameSite=Strict`, `Path=/`) and is
//! redirected to the same page without the token, so that it leaves the
//! address bar and the history. From then on every request — page, API,
//! results, uploads, event stream — must carry the token: in that cookie, in
//! `Authorization: Bearer TOKEN` (scripts) or in `?token=` (any method).
//! Comparisons take the same time whatever the bytes (no early exit).
//!
//! The cookie also carries a random id of the browser session (the part
//! after the dot): the "client" whose queued jobs the per-client queue bound
//! counts. It is not a secret; the token before it is.

use axum::http::{header, HeaderMap, HeaderValue};

/// Bytes of the token (192 bits; printed as 48 hexadecimal digits).
const TOKEN_BYTES: usize = 24;

/// The server's secret, or none (`--no-token`).
pub(crate) struct Auth {
    token: Option<String>,
    cookie: String,
}

/// How a request is authorised (or why not).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The right token: the client's id (the cookie's session, or "token").
    Allowed(String),
    /// The right token in `?token=` of a GET/HEAD: answer with the cookie
    /// and a redirect to the URL without it.
    Exchange,
    /// No token at all.
    Missing,
    /// A token, but not this server's.
    Wrong,
}

/// `n` random bytes from the operating system, as lowercase hexadecimal.
pub(crate) fn random_hex(n: usize) -> std::io::Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Whether `a == b`, in a time that depends on their lengths only.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    // Keep the fold from being short-circuited into an early exit.
    std::hint::black_box(diff) == 0
}

impl Auth {
    /// A fresh token for the server at `port` (`None`: `--no-token`).
    pub(crate) fn new(port: u16, enabled: bool) -> std::io::Result<Auth> {
        Ok(Auth {
            token: if enabled {
                Some(random_hex(TOKEN_BYTES)?)
            } else {
                None
            },
            // Cookies are not kept apart by port: the name keeps two studios
            // of one host from overwriting each other's.
            cookie: format!("neural-style-studio-{port}"),
        })
    }

    /// The token, if one is required.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Judges a request from its method, query string and headers.
    pub(crate) fn check(&self, get: bool, query: Option<&str>, headers: &HeaderMap) -> Verdict {
        let Some(token) = &self.token else {
            return Verdict::Allowed(String::new());
        };
        let token = token.as_bytes();
        let mut wrong = false;
        // The cookie (a browser), possibly among other cookies.
        for v in headers.get_all(header::COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            for pair in v.split(';') {
                let Some((name, value)) = pair.trim().split_once('=') else {
                    continue;
                };
                if name != self.cookie {
                    continue;
                }
                let (given, session) = value.split_once('.').unwrap_or((value, ""));
                if same(given.as_bytes(), token) {
                    return Verdict::Allowed(format!("session {session}"));
                }
                wrong = true;
            }
        }
        // A script: `Authorization: Bearer TOKEN`.
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let v = v.to_str().unwrap_or("");
            let given = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or(v)
                .trim();
            if same(given.as_bytes(), token) {
                return Verdict::Allowed("token".into());
            }
            wrong = true;
        }
        // The URL printed at start-up: `?token=TOKEN`.
        for pair in query.unwrap_or("").split('&') {
            if let Some(given) = pair.strip_prefix("token=") {
                if same(given.as_bytes(), token) {
                    return if get {
                        Verdict::Exchange
                    } else {
                        Verdict::Allowed("token".into())
                    };
                }
                wrong = true;
            }
        }
        if wrong {
            Verdict::Wrong
        } else {
            Verdict::Missing
        }
    }

    /// The `Set-Cookie` of an exchange: the token and a new session id.
    pub(crate) fn set_cookie(&self) -> Option<HeaderValue> {
        let token = self.token.as_ref()?;
        let session = random_hex(8).ok()?;
        HeaderValue::from_str(&format!(
            "{}={token}.{session}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie
        ))
        .ok()
    }
}

/// `path?query` without its `token=` parameter (the redirect of an exchange).
pub(crate) fn without_token(path: &str, query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("token="))
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn tokens_are_random_and_long() {
        let a = Auth::new(8080, true).unwrap();
        let b = Auth::new(8080, true).unwrap();
        let (ta, tb) = (a.token().unwrap(), b.token().unwrap());
        assert_eq!(ta.len(), 2 * TOKEN_BYTES);
        const { assert!(TOKEN_BYTES * 8 >= 128) };
        assert_ne!(ta, tb);
        assert!(ta.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn only_the_right_token_passes() {
        let a = Auth::new(8080, true).unwrap();
        let t = a.token().unwrap().to_string();
        let none = HeaderMap::new();
        assert_eq!(a.check(true, None, &none), Verdict::Missing);
        assert_eq!(a.check(true, Some("x=1"), &none), Verdict::Missing);
        let cookie = format!("other=1; neural-style-studio-8080={t}.abcd");
        assert_eq!(
            a.check(false, None, &headers(&[("cookie", &cookie)])),
            Verdict::Allowed("session abcd".into())
        );
        // Another port's cookie is not this server's.
        let cookie = format!("neural-style-studio-8081={t}.abcd");
        assert_eq!(
            a.check(true, None, &headers(&[("cookie", &cookie)])),
            Verdict::Missing
        );
        let mut bad = t.clone().into_bytes();
        bad[5] ^= 1;
        let bad = String::from_utf8(bad).unwrap();
        let cookie = format!("neural-style-studio-8080={bad}.abcd");
        assert_eq!(
            a.check(true, None, &headers(&[("cookie", &cookie)])),
            Verdict::Wrong
        );
        assert_eq!(
            a.check(
                true,
                None,
                &headers(&[("authorization", &format!("Bearer {t}"))])
            ),
            Verdict::Allowed("token".into())
        );
        assert_eq!(
            a.check(true, None, &headers(&[("authorization", "Bearer 00")])),
            Verdict::Wrong
        );
        assert_eq!(
            a.check(true, Some(&format!("a=1&token={t}")), &none),
            Verdict::Exchange
        );
        assert_eq!(
            a.check(false, Some(&format!("token={t}")), &none),
            Verdict::Allowed("token".into())
        );
        assert_eq!(
            a.check(true, Some(&format!("token={t}0")), &none),
            Verdict::Wrong
        );
        assert_eq!(a.check(true, Some("token="), &none), Verdict::Wrong);
        let c = a.set_cookie().unwrap();
        let c = c.to_str().unwrap();
        assert!(
            c.starts_with(&format!("neural-style-studio-8080={t}.")),
            "{c}"
        );
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        // --no-token: everyone.
        let open = Auth::new(8080, false).unwrap();
        assert!(matches!(open.check(true, None, &none), Verdict::Allowed(_)));
        assert!(open.set_cookie().is_none());
    }

    #[test]
    fn comparisons_and_redirects() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert_eq!(without_token("/", Some("token=x")), "/");
        assert_eq!(without_token("/a", Some("token=x&b=2")), "/a?b=2");
        assert_eq!(without_token("/a", None), "/a");
    }
}
