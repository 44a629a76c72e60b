use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::*;

/// Flags shaped like the control plane's: an address, numbers, a list, a switch, paired and
/// conflicting flags, a global flag, a subcommand, a secret and a secret's file.
#[derive(clap::Parser, Debug)]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Cargo sets CARGO_PKG_NAME for the tests it runs: an environment variable that is set,
    /// without `std::env::set_var` (unsafe, and the workspace forbids unsafe code).
    #[arg(long, env = "CARGO_PKG_NAME", default_value = "nobody")]
    name: String,
    #[arg(long, default_value_t = 10)]
    stale_after: u64,
    #[arg(long, default_value_t = 10)]
    source_poll: u64,
    #[arg(long, value_delimiter = ',', global = true)]
    endpoints: Vec<String>,
    #[arg(long, conflicts_with = "tls_cert")]
    plaintext: bool,
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[arg(long)]
    etcd_password: Option<String>,
    #[arg(long)]
    etcd_password_file: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    max_streams_per_token: usize,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    Migrate {
        #[arg(long)]
        to_etcd: bool,
    },
}

/// A config file holding `text`, in a folder removed when dropped.
struct File {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn file(text: &str) -> File {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, text).expect("the config file is written");
    File { _dir: dir, path }
}

fn parse(path: Option<&Path>, args: &[&str]) -> Result<Effective, Error> {
    let mut argv: Vec<OsString> = vec!["prog".into()];
    if let Some(path) = path {
        argv.extend(["--config".into(), path.into()]);
    }
    argv.extend(args.iter().map(OsString::from));
    parse_from(Args::command(), argv)
}

fn args(effective: Effective) -> Args {
    effective.into_parsed().expect("the matches fit Args")
}

fn error(path: &Path, args: &[&str]) -> String {
    match parse(Some(path), args) {
        Ok(effective) => panic!("accepted: {:?}", effective.matches),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let env = std::env::var("CARGO_PKG_NAME").expect("cargo test sets CARGO_PKG_NAME");
    let f =
        file("listen = \"127.0.0.1:9000\"\nname = \"from-file\"\nstale-after = 30\nsource-poll = 20\nendpoints = []\n");
    let effective = parse(Some(&f.path), &["--source-poll", "5"]).expect("parses");
    assert_eq!(effective.origin("source-poll"), Some(Origin::Flag));
    assert_eq!(effective.origin("name"), Some(Origin::Env("CARGO_PKG_NAME".into())));
    assert_eq!(effective.origin("stale-after"), Some(Origin::File));
    assert_eq!(effective.origin("listen"), Some(Origin::File));
    assert_eq!(effective.origin("max-streams-per-token"), Some(Origin::Default));
    assert_eq!(effective.origin("tls-cert"), Some(Origin::Unset));
    assert_eq!(effective.origin("config"), None, "--config is no key");
    let args = args(effective);
    assert_eq!(args.source_poll, 5);
    assert_eq!(args.name, env);
    assert_eq!(args.stale_after, 30);
    assert_eq!(args.listen, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(args.max_streams_per_token, 256);
    assert_eq!(args.config.config.as_deref(), Some(f.path.as_path()));
}

#[test]
fn without_a_file_the_flags_parse_as_before() {
    let effective = parse(None, &["--stale-after", "3"]).expect("parses");
    assert_eq!(effective.file(), None);
    assert_eq!(effective.origin("stale-after"), Some(Origin::Flag));
    assert_eq!(effective.origin("listen"), Some(Origin::Default));
    assert_eq!(args(effective).stale_after, 3);
}

#[test]
fn an_unknown_key_is_refused_naming_it_the_file_its_line_and_the_known_keys() {
    let f = file("listen = \"127.0.0.1:9000\"\n\nlisen = \"127.0.0.1:9001\"\n");
    let message = error(&f.path, &[]);
    assert!(
        message.starts_with(&format!(
            "unknown key 'lisen' in {} (line 3); did you mean 'listen'? known keys: listen, name, stale-after,",
            f.path.display()
        )),
        "{message}"
    );
    assert!(!message.contains("print-config") && !message.contains("config,"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_key() {
    for (text, expected) in [
        ("stale-after = \"ten\"", "key 'stale-after' in {} (line 1): expected an integer, found a string"),
        ("plaintext = \"yes\"", "key 'plaintext' in {} (line 1): expected true or false, found a string"),
        ("endpoints = 5", "key 'endpoints' in {} (line 1): expected an array, found an integer"),
        ("endpoints = [\"https://a\", 5]", "key 'endpoints' in {} (line 1): expected a string, found an integer"),
        ("name = 5", "key 'name' in {} (line 1): expected a string, found an integer"),
        ("\n[listen]\nport = 1", "key 'listen' in {} (line 2): expected a string, found a table"),
        ("stale-after = 1979-05-27", "key 'stale-after' in {} (line 1): expected an integer, found a datetime"),
    ] {
        let f = file(text);
        let message = error(&f.path, &[]);
        assert!(message.starts_with(&expected.replace("{}", &f.path.display().to_string())), "{text}: {message}");
    }
}

#[test]
fn a_value_the_flag_would_refuse_is_refused_naming_the_key() {
    let f = file("# addresses\nlisten = \"nowhere\"\n");
    let message = error(&f.path, &[]);
    assert!(message.starts_with(&format!("key 'listen' in {} (line 2): invalid value 'nowhere'", f.path.display())));
    assert!(message.contains("invalid socket address"), "{message}");
    let f = file("stale-after = -1");
    assert!(
        error(&f.path, &[])
            .starts_with(&format!("key 'stale-after' in {} (line 1): invalid value '-1'", f.path.display()))
    );
}

#[test]
fn integers_take_every_toml_spelling() {
    for (text, expected) in [("stale-after = 1_000", 1000), ("stale-after = 0x10", 16), ("stale-after = 0o10", 8)] {
        let f = file(text);
        assert_eq!(args(parse(Some(&f.path), &[]).expect(text)).stale_after, expected, "{text}");
    }
}

#[test]
fn a_list_takes_an_array_or_one_string_and_a_flag_replaces_it_whole() {
    let expected = vec!["https://a:2379".to_string(), "https://b:2379".to_string()];
    let f = file("endpoints = [\"https://a:2379\", \"https://b:2379\"]");
    assert_eq!(args(parse(Some(&f.path), &[]).unwrap()).endpoints, expected);
    let f = file("endpoints = \"https://a:2379,https://b:2379\"");
    assert_eq!(args(parse(Some(&f.path), &[]).unwrap()).endpoints, expected);
    let effective = parse(Some(&f.path), &["--endpoints", "https://c:2379"]).unwrap();
    assert_eq!(effective.origin("endpoints"), Some(Origin::Flag));
    assert_eq!(args(effective).endpoints, ["https://c:2379"]);
}

#[test]
fn a_switch_takes_true_or_false() {
    let f = file("plaintext = true");
    let effective = parse(Some(&f.path), &[]).unwrap();
    assert_eq!(effective.origin("plaintext"), Some(Origin::File));
    assert!(args(effective).plaintext);
    let f = file("plaintext = false");
    let effective = parse(Some(&f.path), &[]).unwrap();
    assert_eq!(effective.origin("plaintext"), Some(Origin::File));
    assert!(!args(effective).plaintext);
}

#[test]
fn file_values_meet_the_rules_flags_meet() {
    // A flag may need another flag the file gives.
    let f = file("tls-key = \"/k.pem\"");
    let args = args(parse(Some(&f.path), &["--tls-cert", "/c.pem"]).expect("the file completes the pair"));
    assert_eq!(args.tls_key.as_deref(), Some(Path::new("/k.pem")));
    // A file value conflicting with a flag is refused as two flags would be.
    let f = file("plaintext = true");
    let message = error(&f.path, &["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]);
    assert_eq!(
        message,
        format!(
            "with the values of config file {}: the argument '--plaintext' cannot be used with '--tls-cert <TLS_CERT>'",
            f.path.display()
        )
    );
}

#[test]
fn a_global_flag_after_a_subcommand_still_beats_the_file() {
    let f = file("endpoints = [\"https://a:2379\"]\nstale-after = 7");
    let effective = parse(Some(&f.path), &["migrate", "--to-etcd", "--endpoints", "https://c:2379"]).unwrap();
    assert_eq!(effective.origin("endpoints"), Some(Origin::Flag));
    let args = args(effective);
    assert_eq!(args.endpoints, ["https://c:2379"]);
    assert_eq!(args.stale_after, 7);
    assert!(matches!(args.command, Some(Sub::Migrate { to_etcd: true })));
}

#[test]
fn help_and_version_need_no_valid_file() {
    let f = file("lisen = 1");
    match parse(Some(&f.path), &["--help"]) {
        Err(Error::Usage(error)) => assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp),
        other => panic!("expected help, got {other:?}"),
    }
}

#[test]
fn a_file_that_is_not_toml_or_not_there_is_named() {
    let f = file("listen = \n");
    let message = error(&f.path, &[]);
    assert!(message.starts_with(&format!("config file {}: TOML parse error at line 1", f.path.display())), "{message}");
    let missing = f.path.with_file_name("missing.toml");
    let message = error(&missing, &[]);
    assert_eq!(message, format!("cannot read config file {}", missing.display()));
}

#[test]
fn print_config_shows_every_key_with_its_origin_masks_secrets_and_reads_back() {
    let f = file(
        "stale-after = 30\netcd-password = \"hunter2\"\netcd-password-file = \"/etc/gatehouse/etcd.pass\"\nendpoints = [\"https://a:2379\", \"https://b:2379\"]\n",
    );
    let effective = parse(Some(&f.path), &["--source-poll", "5", "--plaintext"]).unwrap();
    let text = effective.to_toml("prog");
    let from = format!("file {}", f.path.display());
    for line in [
        "# prog: effective configuration (flag > environment > file > default)".to_string(),
        format!("# config file: {}", f.path.display()),
        "listen = \"127.0.0.1:7400\" # default".into(),
        "name = \"gatehouse-shared\" # env CARGO_PKG_NAME".into(),
        format!("stale-after = 30 # {from}"),
        "source-poll = 5 # flag --source-poll".into(),
        format!("endpoints = [\"https://a:2379\", \"https://b:2379\"] # {from}"),
        "plaintext = true # flag --plaintext".into(),
        "# tls-cert is not set".into(),
        format!("etcd-password = \"********\" # {from}, masked"),
        format!("etcd-password-file = \"/etc/gatehouse/etcd.pass\" # {from}"),
        "max-streams-per-token = 256 # default".into(),
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
    }
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("print-config"), "{text}");

    // What it prints is a config file giving the same configuration.
    let again = file(&text);
    let args = args(parse(Some(&again.path), &[]).expect("the printed configuration reads back"));
    assert_eq!((args.stale_after, args.source_poll, args.plaintext), (30, 5, true));
    assert_eq!(args.endpoints, ["https://a:2379", "https://b:2379"]);
}

#[test]
fn quoting_escapes_what_toml_needs() {
    assert_eq!(print::quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

#[test]
fn a_misspelt_key_finds_its_neighbour() {
    let known = ["listen", "admin-listen", "stale-after", "source-poll"];
    assert_eq!(keys::closest("lisen", &known), Some("listen"));
    assert_eq!(keys::closest("stale_after", &known), Some("stale-after"));
    assert_eq!(keys::closest("database", &known), None);
}
