//! Unsupported clients (SPEC §2 item 5): browsers and systems below a configured minimum,
//! read from the User-Agent with the `woothee` parser, are refused with `unsupported_client`
//! naming what is supported.
//!
//! Decisions where the User-Agent cannot tell:
//! - An agent that is not a recognised browser (a native app, a server, curl) is allowed: the
//!   rule is about outdated browsers and systems, and API clients name themselves freely.
//! - Browsers freeze the macOS version at 10.15.7 and Windows 11 reports "Windows NT 10.0";
//!   those values are treated as "at least" (10.15.x passes a macOS 11 minimum), because
//!   refusing them would refuse every current Mac. Versions below them are refused.

/// SPEC defaults: Chrome/Edge 109, Firefox 115, Safari 15; Windows 10, macOS 11, iOS 15,
/// Android 10; Internet Explorer never.
pub const DEFAULT_MINIMUMS: &str =
    "chrome=109,edge=109,firefox=115,safari=15,windows=10,macos=11,ios=15,android=10,ie=never";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minimums {
    entries: Vec<(String, Option<u32>)>,
}

impl Minimums {
    /// `name=version` pairs separated by commas; `never` refuses every version.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, version) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not name=version"))?;
            let version = match version.trim() {
                "never" => None,
                v => Some(
                    v.parse::<u32>()
                        .map_err(|_| format!("{pair:?}: version must be a number or never"))?,
                ),
            };
            entries.push((name.trim().to_ascii_lowercase(), version));
        }
        Ok(Minimums { entries })
    }

    fn get(&self, name: &str) -> Option<Option<u32>> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// "Chrome 109+, Edge 109+, …, Internet Explorer is not supported".
    pub fn describe(&self) -> String {
        self.entries
            .iter()
            .map(|(name, v)| {
                let shown = display_name(name);
                match v {
                    Some(v) => format!("{shown} {v} or later"),
                    None => format!("not {shown}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn display_name(key: &str) -> &str {
    match key {
        "chrome" => "Chrome",
        "edge" => "Edge",
        "firefox" => "Firefox",
        "safari" => "Safari",
        "windows" => "Windows",
        "macos" => "macOS",
        "ios" => "iOS",
        "android" => "Android",
        "ie" => "Internet Explorer",
        other => other,
    }
}

fn major(version: &str) -> Option<u32> {
    version.split(['.', '_']).next()?.trim().parse().ok()
}

/// A dotted version as comparable numbers (`10.15.7` → [10, 15, 7]).
fn parts(version: &str) -> Vec<u32> {
    version
        .split(['.', '_'])
        .map_while(|p| p.trim().parse().ok())
        .collect()
}

/// A recognised browser: its minimum key and major version.
type Browser = Option<(&'static str, Option<u32>)>;
/// A recognised system: its minimum key and version parts.
type System = Option<(&'static str, Vec<u32>)>;

/// What the User-Agent says, as minimum keys and versions.
fn recognise(ua: &str) -> (Browser, System) {
    let Some(r) = woothee::parser::Parser::new().parse(ua) else {
        return (None, None);
    };
    let browser = match r.name {
        "Chrome" => Some(("chrome", major(r.version))),
        "Edge" => Some(("edge", major(r.version))),
        "Firefox" => Some(("firefox", major(r.version))),
        "Safari" => Some(("safari", major(r.version))),
        "Internet Explorer" => Some(("ie", major(r.version))),
        _ => None,
    };
    let os = match r.os {
        "Windows 10" => Some(("windows", vec![10])),
        "Windows 8.1" => Some(("windows", vec![8, 1])),
        "Windows 8" => Some(("windows", vec![8])),
        "Windows 7" => Some(("windows", vec![7])),
        "Windows Vista" => Some(("windows", vec![6])),
        "Windows XP" | "Windows 2000" | "Windows 98" | "Windows 95" | "Windows ME"
        | "Windows NT 4.0" => Some(("windows", vec![5])),
        "Mac OSX" => Some(("macos", parts(&r.os_version))),
        "iOS" | "iPhone" | "iPad" | "iPod" => Some(("ios", parts(&r.os_version))),
        "Android" => Some(("android", parts(&r.os_version))),
        _ => None,
    };
    (browser, os)
}

/// Refuses a recognised browser or system below its minimum.
pub fn check(minimums: &Minimums, user_agent: Option<&str>) -> Result<(), crate::ApiError> {
    let ua = user_agent.unwrap_or("");
    if ua.is_empty() {
        return Ok(());
    }
    let (browser, os) = recognise(ua);
    let refused = || {
        crate::ApiError::UnsupportedClient(format!(
            "This browser or operating system is not supported. Supported: {}.",
            minimums.describe()
        ))
    };
    if let Some((key, version)) = browser
        && let Some(min) = minimums.get(key)
    {
        match (min, version) {
            (None, _) => return Err(refused()),
            (Some(min), Some(v)) if v < min => return Err(refused()),
            _ => {}
        }
    }
    if let Some((key, version)) = os
        && let Some(min) = minimums.get(key)
    {
        let Some(min) = min else {
            return Err(refused());
        };
        let frozen_mac =
            key == "macos" && version.first() == Some(&10) && version.get(1) == Some(&15);
        if !version.is_empty() && !frozen_mac && version.first().copied().unwrap_or(0) < min {
            return Err(refused());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_default(ua: &str) -> bool {
        check(&Minimums::parse(DEFAULT_MINIMUMS).unwrap(), Some(ua)).is_ok()
    }

    #[test]
    fn current_browsers_pass() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "curl/8.5.0",
            "PortcullisBankApp/3.2 (iOS)",
        ] {
            assert!(check_default(ua), "{ua}");
        }
    }

    #[test]
    fn old_browsers_and_systems_are_refused_naming_what_is_supported() {
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
            "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_13_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.2 Safari/605.1.15",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 14_8 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.2 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 9; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        ] {
            let err = check(&Minimums::parse(DEFAULT_MINIMUMS).unwrap(), Some(ua)).unwrap_err();
            assert_eq!(err.code(), "unsupported_client", "{ua}");
            assert!(
                err.problem().detail.contains("Chrome 109 or later"),
                "{}",
                err.problem().detail
            );
        }
    }

    #[test]
    fn minimums_are_configurable_and_validated() {
        let strict = Minimums::parse("chrome=200").unwrap();
        assert!(check(&strict, Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")).is_err());
        assert!(Minimums::parse("chrome").is_err());
        assert!(Minimums::parse("chrome=new").is_err());
    }
}
