//! `portcullis-admin`: the operator CLI. It talks to whatever DynamoDB table the environment
//! names (`PORTCULLIS_TABLE`, plus the standard AWS settings; `AWS_ENDPOINT_URL` for the local
//! emulator), through the same shared crate the functions use.
//!
//! ```text
//! portcullis-admin create-user --user-id ID [--email ADDRESS] [--phone +E164] [--role ROLE]...
//!                              (--password-stdin | --generate-password)
//! portcullis-admin unlock --user-id ID
//! portcullis-admin rotate-signing-key [--if-missing]
//! portcullis-admin rotate-code-key [--if-missing]
//! ```
//!
//! `rotate-signing-key` makes a new access-token signing key for the envelope mode (SPEC §6,
//! `portcullis::signing`), sealed by the KMS data key, and keeps the previous one published;
//! `rotate-code-key` does the same for the key one-time codes are MACed under
//! (`portcullis::code_keys`), keeping the previous key so codes in flight still verify.
//! `--if-missing` makes the first key and leaves an existing one alone (set-up scripts).
//!
//! Passwords are never taken from the command line (other users can read it in `ps`): either
//! one line piped to standard input (not a terminal, which would echo it), or generated and
//! printed once. `create-user` and `unlock` go through `portcullis::service::operator` (the
//! password policy, the admin API's checks, an audit event with `operator` as actor).

use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use portcullis::Deps;
use portcullis::crypto::{SecretString, random_token};
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::service::operator;
use portcullis::storage::{CODE_MAC_KEYS, TOKEN_SIGNING_KEYS};

const USAGE: &str = "usage:
  portcullis-admin create-user --user-id ID [--email ADDRESS] [--phone +E164] [--role ROLE]...
                               (--password-stdin | --generate-password)
  portcullis-admin unlock --user-id ID
  portcullis-admin rotate-signing-key [--if-missing]
  portcullis-admin rotate-code-key [--if-missing]";

#[derive(Debug, Default)]
struct Args {
    command: String,
    user_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    roles: Vec<String>,
    password_stdin: bool,
    generate_password: bool,
    if_missing: bool,
}

fn parse_args(raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut raw = raw.peekable();
    let mut args = Args {
        command: raw.next().ok_or(USAGE)?,
        ..Args::default()
    };
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--user-id" => args.user_id = Some(value()?),
            "--email" => args.email = Some(value()?),
            "--phone" => args.phone = Some(value()?),
            "--role" => args.roles.push(value()?),
            "--password-stdin" => args.password_stdin = true,
            "--generate-password" => args.generate_password = true,
            "--if-missing" => args.if_missing = true,
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> ExitCode {
    // Warnings and errors on stderr: a storage failure says what failed (access denied, no
    // such table), not only "service unavailable". Nothing the services log holds a secret.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .without_time()
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("portcullis-admin: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let args = parse_args(std::env::args().skip(1))?;
    match args.command.as_str() {
        "create-user" => {
            let raw_id = args.user_id.as_deref().ok_or("--user-id is required")?;
            let (password, generated) = password(&args, raw_id)?;
            let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
            let new = operator::NewUser {
                user_id: raw_id,
                email: args.email.as_deref(),
                phone: args.phone.as_deref(),
                roles: args.roles.clone(),
                password: SecretString::new(password.clone()),
            };
            let user = operator::create_user(&deps, new, &operator_name())
                .await
                .map_err(refusal)?;
            let mut out = serde_json::json!({ "user_id": user.user_id, "roles": user.roles });
            if generated {
                out["password"] = serde_json::Value::String(password);
            }
            println!("{out}");
            Ok(())
        }
        "unlock" => {
            let raw_id = args.user_id.as_deref().ok_or("--user-id is required")?;
            let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
            let user_id = operator::unlock(&deps, raw_id, &operator_name())
                .await
                .map_err(refusal)?;
            println!(
                "{}",
                serde_json::json!({ "user_id": user_id, "unlocked": true })
            );
            Ok(())
        }
        "rotate-signing-key" | "rotate-code-key" => {
            let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
            let (keys, sealer, now) = (
                deps.stores.keys.as_ref(),
                deps.sealer.as_ref(),
                deps.clock.now(),
            );
            let made = if args.command == "rotate-signing-key" {
                portcullis::signing::rotate(keys, TOKEN_SIGNING_KEYS, sealer, now, args.if_missing)
                    .await
                    .map(|r| r.map(|k| (k.current_kid, k.version, k.previous_kid)))
            } else {
                portcullis::code_keys::rotate(keys, CODE_MAC_KEYS, sealer, now, args.if_missing)
                    .await
                    .map(|r| r.map(|k| (k.current_kid, k.version, k.previous_kid)))
            };
            let out = match made.map_err(|e| e.to_string())? {
                Some((kid, version, previous_kid)) => serde_json::json!({
                    "kid": kid,
                    "version": version,
                    "previous_kid": previous_kid,
                }),
                None => serde_json::json!({ "unchanged": "a key exists" }),
            };
            println!("{out}");
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

/// What the service refused, in its own words (the problem's detail: never a secret).
fn refusal(error: ApiError) -> String {
    match error {
        ApiError::NotFound => "no such user".into(),
        other => other.problem().detail,
    }
}

/// Who ran the command, for the audit event: the OS user (self-reported; the AWS principal
/// that made the writes is in CloudTrail). Only a plain login name is kept (letters, digits,
/// `.`, `_`, `-`, at most 32), since the detail is shown to the user in their event list: an
/// environment cannot put other text, or invisible and bidirectional characters, there.
fn operator_name() -> String {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    plain_name(name)
}

fn plain_name(name: String) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if (1..=32).contains(&name.len()) && name.chars().all(plain) {
        name
    } else {
        "unknown".into()
    }
}

/// The new password and whether it was generated (then it is printed once). A generated one
/// is drawn again until the policy's shape rules pass for `user_id` (a random token could
/// contain a one- or two-character user ID).
fn password(args: &Args, user_id: &str) -> Result<(String, bool), String> {
    match (args.password_stdin, args.generate_password) {
        (true, false) => {
            // Typed at a terminal, the password would be echoed (and kept in its scrollback).
            if std::io::stdin().is_terminal() {
                return Err(
                    "--password-stdin reads a pipe, not a terminal (it would show the \
                            password): pipe it in, or use --generate-password"
                        .into(),
                );
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            // The policy (length, common passwords, the user ID) is the service's to check.
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            Ok((password, false))
        }
        (false, true) => {
            let Ok(id) = UserId::parse(user_id) else {
                // The service refuses the ID itself, with its own words.
                return Ok((random_token(), true));
            };
            (0..100)
                .map(|_| random_token())
                .find(|p| portcullis::policy::check_shape(p, &id).is_ok())
                .map(|p| (p, true))
                .ok_or_else(|| "no generated password passes the policy for this user ID".into())
        }
        _ => Err("give exactly one of --password-stdin and --generate-password".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_repeated_roles_and_refuses_unknown_flags() {
        let a = args(&[
            "create-user",
            "--user-id",
            "Admin",
            "--role",
            "admin",
            "--role",
            "support",
            "--generate-password",
        ])
        .unwrap();
        assert_eq!(a.roles, vec!["admin", "support"]);
        assert!(args(&["create-user", "--password", "x"]).is_err());
        assert!(args(&["create-user", "--user-id"]).is_err());
    }

    #[test]
    fn the_operators_name_is_a_plain_login_or_unknown() {
        assert_eq!(plain_name("ops-1.a_b".into()), "ops-1.a_b");
        for forged in [
            "",
            "x; roles admin",
            "evil\u{202e}nimda",
            "ü",
            &"a".repeat(33),
        ] {
            assert_eq!(plain_name(forged.into()), "unknown", "{forged:?}");
        }
    }

    #[test]
    fn a_generated_password_passes_the_policy_even_for_a_short_user_id() {
        let generate = args(&["create-user", "--generate-password"]).unwrap();
        for id in ["a", "ab", "x1"] {
            let (made, generated) = password(&generate, id).unwrap();
            assert!(generated);
            let id = UserId::parse(id).unwrap();
            assert!(portcullis::policy::check_shape(&made, &id).is_ok(), "{id}");
        }
    }

    #[test]
    fn needs_exactly_one_password_source() {
        let both = args(&["create-user", "--password-stdin", "--generate-password"]).unwrap();
        assert!(password(&both, "someone").is_err());
        let none = args(&["create-user"]).unwrap();
        assert!(password(&none, "someone").is_err());
    }
}
