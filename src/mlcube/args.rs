//! `docker run` arguments from `cpu_args`/`gpu_args`, string `env_args` and the runner options:
//! split into words like `/bin/sh` would (but never evaluated: cohort runs no shell), then
//! mapped onto the Engine API fields cohort supports, with the allowlist for registered cubes.

/// Words of a shell-like string. Quotes and backslashes group words as in `/bin/sh`; anything
/// the shell would evaluate on the host (`$VAR`, `$(...)`, backticks, `;`, `|`, `&`, redirects)
/// is refused instead of being run (MLCube 0.0.9 pasted these strings into a shell command).
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    split_words(s, true)
}

/// Python's `shlex.split` (POSIX mode): quotes and backslashes group words; `$` and shell
/// operators are ordinary characters. Used for task entrypoints, which 0.0.9 splits this way.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    split_words(s, false)
}

fn split_words(s: &str, refuse_shell: bool) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let refuse_dollar = |next: Option<&char>| -> Result<(), String> {
        if !refuse_shell {
            return Ok(());
        }
        match next {
            Some(c)
                if c.is_alphanumeric()
                    || matches!(c, '_' | '{' | '(' | '@' | '*' | '#' | '?' | '$' | '!' | '-') =>
            {
                Err(format!(
                    "{s:?} asks the shell to expand `$`; cohort runs no shell"
                ))
            }
            _ => Ok(()),
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("{s:?} has an unterminated quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => cur.push(e),
                            Some('\n') => {}
                            Some(other) => {
                                cur.push('\\');
                                cur.push(other);
                            }
                            None => return Err(format!("{s:?} has an unterminated quote")),
                        },
                        Some('$') => {
                            refuse_dollar(chars.peek())?;
                            cur.push('$');
                        }
                        Some('`') if refuse_shell => {
                            return Err(format!(
                                "{s:?} asks the shell to run a command; cohort runs no shell"
                            ));
                        }
                        Some(c) => cur.push(c),
                        None => return Err(format!("{s:?} has an unterminated quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(e) => cur.push(e),
                }
            }
            '$' => {
                refuse_dollar(chars.peek())?;
                in_word = true;
                cur.push('$');
            }
            '`' | ';' | '|' | '&' | '<' | '>' | '(' | ')' if refuse_shell => {
                return Err(format!(
                    "{s:?} uses the shell operator `{c}`; cohort runs no shell"
                ));
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// The `docker run` flags cohort understands, gathered from the MLCube invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunArgs {
    pub gpus: Option<String>,
    pub shm_size: Option<String>,
    pub runtime: Option<String>,
    pub memory: Option<String>,
    pub cpuset_cpus: Option<String>,
    pub cpus: Option<String>,
    pub network: Option<String>,
    pub security_opt: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Flags that cohort's hardening supersedes (`--rm`, `-u`, `-it`): accepted, not applied.
    pub superseded: Vec<String>,
}

/// Whether a run argument may appear in a registered cube (docs/design.md: `--gpus`,
/// `--shm-size`, `--runtime=nvidia` only).
pub fn strict_allowed(flag: &str, value: Option<&str>) -> bool {
    match flag {
        "--gpus" | "--shm-size" => true,
        "--runtime" => value == Some("nvidia"),
        _ => false,
    }
}

/// One parsed flag: its canonical name, value, and the tokens it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub name: &'static str,
    pub value: Option<String>,
    pub tokens: Vec<String>,
}

impl Flag {
    /// The flag as written (`--gpus all`).
    pub fn text(&self) -> String {
        self.tokens.join(" ")
    }
}

const WITH_VALUE: &[(&str, &str)] = &[
    ("--gpus", "--gpus"),
    ("--shm-size", "--shm-size"),
    ("--runtime", "--runtime"),
    ("--memory", "--memory"),
    ("-m", "--memory"),
    ("--cpuset-cpus", "--cpuset-cpus"),
    ("--cpus", "--cpus"),
    ("--network", "--network"),
    ("--net", "--network"),
    ("--security-opt", "--security-opt"),
    ("-e", "--env"),
    ("--env", "--env"),
    ("-u", "--user"),
    ("--user", "--user"),
];
const WITHOUT_VALUE: &[(&str, &str)] = &[
    ("--rm", "--rm"),
    ("-i", "--interactive"),
    ("--interactive", "--interactive"),
    ("-t", "--tty"),
    ("--tty", "--tty"),
    ("-it", "-it"),
    ("-ti", "-it"),
];

/// Splits tokens into flags. An unknown flag is returned as `Err(token)`.
pub fn parse_flags(tokens: &[String]) -> Result<Vec<Flag>, String> {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        let (head, inline) = match tok.split_once('=') {
            Some((h, v)) if h.starts_with("--") => (h, Some(v.to_string())),
            _ => (tok.as_str(), None),
        };
        if let Some((_, name)) = WITH_VALUE.iter().find(|(f, _)| *f == head) {
            let (value, used) = match inline {
                Some(v) => (v, vec![tok.clone()]),
                None => {
                    let v = tokens
                        .get(i + 1)
                        .ok_or_else(|| format!("{tok} (missing its value)"))?
                        .clone();
                    i += 1;
                    (v.clone(), vec![tok.clone(), v])
                }
            };
            flags.push(Flag {
                name,
                value: Some(value),
                tokens: used,
            });
        } else if let Some((_, name)) = WITHOUT_VALUE.iter().find(|(f, _)| *f == tok) {
            flags.push(Flag {
                name,
                value: None,
                tokens: vec![tok.clone()],
            });
        } else if let Some(short) = ["-e", "-m", "-u"]
            .iter()
            .find(|s| tok.starts_with(*s) && tok.len() > 2)
        {
            // `-eKEY=VALUE`, `-m1g`: docker accepts short flags glued to their value.
            let name = WITH_VALUE
                .iter()
                .find(|(f, _)| f == short)
                .map(|(_, n)| *n)
                .expect("short flags are in the table");
            flags.push(Flag {
                name,
                value: Some(tok[2..].to_string()),
                tokens: vec![tok.clone()],
            });
        } else {
            return Err(tok.clone());
        }
        i += 1;
    }
    Ok(flags)
}

impl RunArgs {
    /// Applies parsed flags (later flags win, as docker's single-value flags do).
    pub fn from_flags(flags: &[Flag]) -> RunArgs {
        let mut out = RunArgs::default();
        for f in flags {
            let v = f.value.clone();
            match f.name {
                "--gpus" => out.gpus = v,
                "--shm-size" => out.shm_size = v,
                "--runtime" => out.runtime = v,
                "--memory" => out.memory = v,
                "--cpuset-cpus" => out.cpuset_cpus = v,
                "--cpus" => out.cpus = v,
                "--network" => out.network = v,
                "--security-opt" => out.security_opt.extend(v),
                "--env" => {
                    let v = v.unwrap_or_default();
                    let (k, val) = v.split_once('=').unwrap_or((&v, ""));
                    out.env.push((k.to_string(), val.to_string()));
                }
                _ => out.superseded.push(f.text()),
            }
        }
        out
    }
}

/// A GPU request as `docker run --gpus` builds it (docker/cli `opts.GpuOpts`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GpuRequest {
    pub driver: Option<String>,
    /// -1 means all GPUs.
    pub count: i64,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<Vec<String>>,
    pub options: Vec<(String, String)>,
}

/// The site's `--gpus` (and a container configuration's `gpus`), as MedPerf reads it: `all`, a
/// count, or `device=ID[,ID]`; `0` (and an empty value) means no GPUs (`None`). One rule for
/// every command and both formats, so a value the command line accepts is one every planner
/// applies. A count comes back as a bare number (`02` is `2`, as Docker needs it).
pub fn site_gpus(value: &str) -> Result<Option<String>, String> {
    let s = value.trim();
    let bad = || format!("{value:?} is not all, a count or device=ID[,ID]");
    if s == "all" {
        return Ok(Some(s.to_string()));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = s.parse().map_err(|_| bad())?;
        return Ok((n > 0).then(|| n.to_string()));
    }
    if s.is_empty() {
        return Ok(None);
    }
    let ids = s.strip_prefix("device=").ok_or_else(bad)?;
    let id_ok = |x: &str| {
        !x.is_empty()
            && x.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b))
    };
    if !ids.split(',').all(id_ok) {
        return Err(bad());
    }
    Ok(Some(s.to_string()))
}

/// A site's `--gpus device=0,1` as Docker's CSV syntax reads it (`"device=0,1"`): unquoted, the
/// `1` would be a second field (a count), which Docker refuses next to device ids.
pub fn quote_device_list(value: &str) -> String {
    match value.strip_prefix("device=") {
        Some(ids) if ids.contains(',') && !value.contains('"') => format!("\"{value}\""),
        _ => value.to_string(),
    }
}

/// Parses a `--gpus` value: `all`, `2`, `device=0`, `"device=0,1"`, `count=2,capabilities=utility`.
pub fn parse_gpus(value: &str) -> Result<GpuRequest, String> {
    let fields = csv_fields(value)?;
    let mut req = GpuRequest {
        driver: None,
        count: 0,
        device_ids: Vec::new(),
        capabilities: Vec::new(),
        options: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    let mut have_devices = false;
    let count = |s: &str| -> Result<i64, String> {
        if s == "all" {
            Ok(-1)
        } else {
            s.parse::<i64>()
                .map_err(|_| format!("invalid count {s:?} in --gpus {value:?}"))
        }
    };
    for field in fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (field.clone(), None),
        };
        if seen.contains(&key) {
            return Err(format!("--gpus {value:?} sets {key} twice"));
        }
        seen.push(key.clone());
        match (key.as_str(), val) {
            (k, None) => {
                seen.push("count".into());
                req.count = count(k)?;
            }
            ("driver", Some(v)) => req.driver = Some(v),
            ("count", Some(v)) => req.count = count(&v)?,
            ("device", Some(v)) => {
                have_devices = true;
                req.device_ids = v.split(',').map(str::to_string).collect();
            }
            ("capabilities", Some(v)) => {
                let mut caps: Vec<String> = v.split(',').map(str::to_string).collect();
                caps.push("gpu".into());
                req.capabilities = vec![caps];
            }
            ("options", Some(v)) => {
                for kv in csv_fields(&v)? {
                    let (k, val) = kv.split_once('=').unwrap_or((&kv, ""));
                    req.options.push((k.to_string(), val.to_string()));
                }
            }
            (other, Some(_)) => {
                return Err(format!("unexpected key {other:?} in --gpus {value:?}"));
            }
        }
    }
    if !seen.iter().any(|k| k == "count") && !have_devices {
        req.count = 1;
    }
    if req.capabilities.is_empty() {
        req.capabilities = vec![vec!["gpu".into()]];
    }
    Ok(req)
}

/// One CSV record (Go's encoding/csv, as docker/cli reads `--gpus`).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (_, c) => cur.push(c),
        }
    }
    if quoted {
        return Err(format!("unterminated quote in {s:?}"));
    }
    out.push(cur);
    Ok(out)
}

/// Docker's `RAMInBytes`: `512m`, `1g`, `1.5GB`, `1073741824` (binary multiples).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(format!("invalid size {s:?} (use e.g. 512m, 2g)")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (use e.g. 512m, 2g)"))?;
    let bytes = n * mult;
    // A size past what the Engine takes is an error, not silently the largest one.
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes as i64)
}

/// `--cpus 1.5` as NanoCPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let n: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("invalid CPU count {s:?} (use e.g. 2 or 0.5)"))?;
    if n.is_nan() || n <= 0.0 || !n.is_finite() {
        return Err(format!("invalid CPU count {s:?} (must be positive)"));
    }
    Ok((n * 1e9).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        shell_split(s).unwrap()
    }

    #[test]
    fn splits_like_sh_without_evaluating() {
        assert_eq!(split("--gpus all"), ["--gpus", "all"]);
        assert_eq!(
            split("  -e 'A=a b'  -e \"B=c\\\"d\" x\\ y "),
            ["-e", "A=a b", "-e", "B=c\"d", "x y"]
        );
        assert_eq!(split("a$"), ["a$"]);
        assert!(shell_split("-u $(id -u)").unwrap_err().contains("expand"));
        assert!(shell_split("-e A=$HOME").is_err());
        assert!(shell_split("a; rm -rf /").unwrap_err().contains("operator"));
        assert!(shell_split("'open").is_err());
        assert!(split("").is_empty());
        assert_eq!(
            shlex_split("python -c 'print(1)' $X").unwrap(),
            ["python", "-c", "print(1)", "$X"]
        );
    }

    #[test]
    fn flags_map_to_fields() {
        let toks = split(
            "--gpus all --shm-size=1g --runtime=nvidia -m 2g --cpuset-cpus=0-1 -e A=1 -eB=2 --rm -it -u 1000:1000",
        );
        let flags = parse_flags(&toks).unwrap();
        let a = RunArgs::from_flags(&flags);
        assert_eq!(a.gpus.as_deref(), Some("all"));
        assert_eq!(a.shm_size.as_deref(), Some("1g"));
        assert_eq!(a.runtime.as_deref(), Some("nvidia"));
        assert_eq!(a.memory.as_deref(), Some("2g"));
        assert_eq!(a.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(a.env, [("A".into(), "1".into()), ("B".into(), "2".into())]);
        assert_eq!(a.superseded, ["--rm", "-it", "-u 1000:1000"]);
        assert_eq!(
            parse_flags(&split("--privileged")).unwrap_err(),
            "--privileged"
        );
        assert!(parse_flags(&split("--gpus")).is_err());
        assert!(strict_allowed("--runtime", Some("nvidia")));
        assert!(!strict_allowed("--runtime", Some("runc")));
        assert!(!strict_allowed("--network", Some("host")));
    }

    #[test]
    fn gpu_requests_match_docker_cli() {
        let all = parse_gpus("all").unwrap();
        assert_eq!(
            (all.count, all.capabilities.clone()),
            (-1, vec![vec!["gpu".to_string()]])
        );
        assert_eq!(parse_gpus("2").unwrap().count, 2);
        let dev = parse_gpus("\"device=0,2\"").unwrap();
        assert_eq!(
            (dev.count, dev.device_ids.clone()),
            (0, vec!["0".into(), "2".into()])
        );
        let caps = parse_gpus("count=1,capabilities=utility,driver=nvidia").unwrap();
        assert_eq!(
            caps.capabilities,
            vec![vec!["utility".to_string(), "gpu".to_string()]]
        );
        assert_eq!(caps.driver.as_deref(), Some("nvidia"));
        let one = parse_gpus("driver=nvidia").unwrap();
        assert_eq!(one.count, 1);
        assert!(parse_gpus("bogus=1").is_err());
        assert!(parse_gpus("all,all").is_err());
    }

    #[test]
    fn site_gpus_are_all_a_count_or_devices() {
        assert_eq!(site_gpus("all").unwrap().as_deref(), Some("all"));
        assert_eq!(site_gpus(" 02 ").unwrap().as_deref(), Some("2"));
        assert_eq!(site_gpus("0").unwrap(), None);
        assert_eq!(site_gpus("00").unwrap(), None);
        assert_eq!(site_gpus("").unwrap(), None);
        assert_eq!(
            site_gpus("device=0,GPU-8f6d_1,MIG-GPU-a/1/0")
                .unwrap()
                .as_deref(),
            Some("device=0,GPU-8f6d_1,MIG-GPU-a/1/0")
        );
        for bad in [
            "-1",
            "count=2,capabilities=compute",
            "device=",
            "device=0,,1",
            "device=\"0,1\"",
            "all,driver=x",
            "99999999999",
            "cuda",
        ] {
            assert!(site_gpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_cpus() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999999999999g").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("0").is_err());
    }
}
