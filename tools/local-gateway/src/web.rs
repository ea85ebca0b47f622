//! The reference web client (`web/`), served at `/` beside the API.
//!
//! Only `GET`/`HEAD` of paths outside the API (`/v1/…`, `/.well-known/…`) reach this. A path
//! without an extension that names no file gets `index.html`, so the links in the reset and
//! invitation emails (`/reset?token=…`, `/welcome?token=…`) open the client. Every answer
//! carries a strict Content-Security-Policy (no inline script, no third-party origin) and
//! `Referrer-Policy: no-referrer`, so the token in those links never leaves in a Referer.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http_body_util::Full;

/// The policy every page is served with: scripts, styles and API calls from this origin only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     base-uri 'none'; frame-ancestors 'none'";

/// Whether a request is the web client's to answer (not the API's).
pub fn is_web_request(method: &str, path: &str) -> bool {
    (method == "GET" || method == "HEAD")
        && !path.starts_with("/v1/")
        && path != "/v1"
        && !path.starts_with("/.well-known/")
}

/// The file under `root` that `path` names, or `None` for anything that tries to leave it
/// (`..`, hidden files, backslashes, NUL).
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.trim_start_matches('/');
    if relative.contains('\\') || relative.contains('\0') {
        return None;
    }
    let mut out = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => out.push(part),
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Answers a web-client request from `root`; `None` when there is nothing to serve (→ 404).
pub async fn serve(root: &Path, method: &str, path: &str) -> Option<hyper::Response<Full<Bytes>>> {
    let mut file = resolve(root, path)?;
    let is_dir = tokio::fs::metadata(&file)
        .await
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let bytes = match tokio::fs::read(if is_dir {
        file.join("index.html")
    } else {
        file.clone()
    })
    .await
    {
        Ok(bytes) => {
            if is_dir {
                file = file.join("index.html");
            }
            bytes
        }
        // Client-side routes (`/reset`, `/welcome`) are the page itself.
        Err(_) if Path::new(path).extension().is_none() => {
            file = root.join("index.html");
            tokio::fs::read(&file).await.ok()?
        }
        Err(_) => return None,
    };
    let body = if method == "HEAD" {
        Bytes::new()
    } else {
        Bytes::from(bytes)
    };
    hyper::Response::builder()
        .status(200)
        .header("content-type", content_type(&file))
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("referrer-policy", "no-referrer")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("cache-control", "no-store")
        .body(Full::new(body))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_web_root() {
        let root = Path::new("/srv/web");
        assert_eq!(
            resolve(root, "/app.js"),
            Some(PathBuf::from("/srv/web/app.js"))
        );
        assert_eq!(resolve(root, "/"), Some(PathBuf::from("/srv/web")));
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/.git/config",
            "/a\\..\\b",
            "/x\0",
            "/.env",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_reads_outside_the_api_are_the_clients() {
        assert!(is_web_request("GET", "/"));
        assert!(is_web_request("HEAD", "/reset"));
        assert!(!is_web_request("POST", "/"));
        assert!(!is_web_request("GET", "/v1/me/factors"));
        assert!(!is_web_request("GET", "/.well-known/jwks.json"));
    }

    #[tokio::test]
    async fn serves_files_with_a_strict_policy_and_falls_back_to_the_page() {
        let dir = std::env::temp_dir().join(format!("portcullis-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<!doctype html>page").unwrap();
        std::fs::write(dir.join("app.js"), "1").unwrap();
        let page = serve(&dir, "GET", "/reset").await.unwrap();
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(
            page.headers()["content-security-policy"],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        let script = serve(&dir, "GET", "/app.js").await.unwrap();
        assert_eq!(
            script.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(serve(&dir, "GET", "/missing.js").await.is_none());
        assert!(serve(&dir, "GET", "/../secret").await.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
