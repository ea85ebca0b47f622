//! What the harness reads before it runs anything: the functions of the SAM template (binary,
//! memory, architecture, timeout) and the functions' environment, the env file written by
//! `scripts/provision.py`.

use std::collections::BTreeMap;

use serde_yaml::Value;

/// One `AWS::Serverless::Function` of the template, as far as measuring it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The logical ID (`SignInFunction`): the function's name in its ARN and log group.
    pub logical_id: String,
    /// `Metadata.BuildProperties.Binary` (`sign-in`): the file name under `--bin-dir`.
    pub binary: String,
    pub memory_mb: u64,
    /// The first of `Architectures` (reported: the figures are measured on this machine's).
    pub architecture: String,
    pub timeout_s: u64,
}

/// Every function of the template that names its binary, in the template's order; memory,
/// architecture and timeout fall back on `Globals.Function`, then on Lambda's defaults (128 MB,
/// x86_64, 3 s) as SAM does.
pub fn template_functions(template: &str) -> Result<Vec<FunctionSpec>, String> {
    let doc: Value = serde_yaml::from_str(template)
        .map_err(|e| format!("the template is not valid YAML: {e}"))?;
    let globals = doc.get("Globals").and_then(|g| g.get("Function"));
    let number = |props: Option<&Value>, key: &str, default: u64| {
        props
            .and_then(|p| p.get(key))
            .or_else(|| globals.and_then(|g| g.get(key)))
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let mut out = Vec::new();
    let Some(resources) = doc.get("Resources").and_then(Value::as_mapping) else {
        return Err("the template has no Resources".into());
    };
    for (logical_id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(binary) = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let props = resource.get("Properties");
        let architecture = props
            .and_then(|p| p.get("Architectures"))
            .or_else(|| globals.and_then(|g| g.get("Architectures")))
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or("x86_64");
        out.push(FunctionSpec {
            logical_id: logical_id.as_str().unwrap_or_default().to_owned(),
            binary: binary.to_owned(),
            memory_mb: number(props, "MemorySize", 128),
            architecture: architecture.to_owned(),
            timeout_s: number(props, "Timeout", 3),
        });
    }
    Ok(out)
}

/// The env file: `KEY='value'` lines as `scripts/provision.py` writes them (sh quoting; an
/// `export ` prefix, double quotes, backslashes and unquoted values are read as sh would).
/// Blank lines and `#` comments are skipped. `origin` names the file in errors.
pub fn parse_env_file(text: &str, origin: &str) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let at = |what: &str| format!("{origin}:{}: {what}", index + 1);
        let Some((name, raw)) = line.split_once('=') else {
            return Err(at("not a KEY=VALUE line"));
        };
        if !is_name(name) {
            return Err(at("not a KEY=VALUE line"));
        }
        env.insert(name.to_owned(), sh_value(raw).map_err(at)?);
    }
    Ok(env)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of one assignment as sh reads it: quotes removed, escapes applied (unquoted
/// whitespace only separates words, which are joined, as the Python harness did).
fn sh_value(raw: &str) -> Result<String, &'static str> {
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next() {
                    Some('\'') => break,
                    Some(c) => out.push(c),
                    None => return Err("no closing quotation"),
                }
            },
            '"' => loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c @ ('\\' | '"' | '$' | '`')) => out.push(c),
                        Some(c) => {
                            out.push('\\');
                            out.push(c);
                        }
                        None => return Err("no closing quotation"),
                    },
                    Some(c) => out.push(c),
                    None => return Err("no closing quotation"),
                }
            },
            '\\' => out.push(chars.next().ok_or("no escaped character")?),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_lists_every_function_with_its_binary_and_the_globals() {
        let template = "
Globals:
  Function:
    Architectures: [arm64]
    MemorySize: 256
    Timeout: 10
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  SignInFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: sign-in
    Properties:
      MemorySize: 512
      Role: !GetAtt SignInRole.Arn
  NoBinary:
    Type: AWS::Serverless::Function
    Properties: {}
  SweepFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: inactive-sweep
    Properties:
      Timeout: 900
      Architectures: [x86_64]
";
        let specs = template_functions(template).unwrap();
        assert_eq!(
            specs,
            vec![
                FunctionSpec {
                    logical_id: "SignInFunction".into(),
                    binary: "sign-in".into(),
                    memory_mb: 512,
                    architecture: "arm64".into(),
                    timeout_s: 10,
                },
                FunctionSpec {
                    logical_id: "SweepFunction".into(),
                    binary: "inactive-sweep".into(),
                    memory_mb: 256,
                    architecture: "x86_64".into(),
                    timeout_s: 900,
                },
            ]
        );
    }

    #[test]
    fn the_real_template_has_the_eleven_functions() {
        let specs = template_functions(portcullis_local_gateway::TEMPLATE).unwrap();
        let mut names: Vec<&str> = specs.iter().map(|s| s.binary.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "admin",
                "devices",
                "factors",
                "inactive-sweep",
                "password",
                "recovery-codes",
                "send-code",
                "sender",
                "sign-in",
                "tokens",
                "verify"
            ]
        );
    }

    #[test]
    fn the_env_file_is_read_as_sh_would() {
        let text = "# written by provision.py\n\nA='plain'\nB='it'\\''s'\nexport C=bare\n\
                    D=\"dq \\\"x\\\" \\n\"\nE=''\n";
        let env = parse_env_file(text, "bench.env").unwrap();
        assert_eq!(env["A"], "plain");
        assert_eq!(env["B"], "it's");
        assert_eq!(env["C"], "bare");
        assert_eq!(env["D"], "dq \"x\" \\n");
        assert_eq!(env["E"], "");
    }

    #[test]
    fn a_bad_env_line_names_its_place() {
        assert_eq!(
            parse_env_file("A='x'\nnot a line\n", "f").unwrap_err(),
            "f:2: not a KEY=VALUE line"
        );
        assert_eq!(
            parse_env_file("A='open\n", "f").unwrap_err(),
            "f:1: no closing quotation"
        );
        assert!(parse_env_file("1A=x\n", "f").is_err());
    }
}
