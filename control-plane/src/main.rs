//! `gatehouse-cp`: the Gatehouse control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gatehouse_control_plane::management::Limits;
use gatehouse_control_plane::{ControlPlane, ControlPlaneConfig, StoreConfig, Transport};

/// Gatehouse control plane: stores client certificates and APIs (sled, or etcd shared by
/// several control planes) and streams configuration to every data plane.
#[derive(Parser, Debug)]
#[command(name = "gatehouse-cp", version = gatehouse_shared::VERSION)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// --config FILE (GATEHOUSE_CP_CONFIG) and --print-config.
    #[command(flatten)]
    config: gatehouse_shared::config_file::ConfigArgs,
    /// Folder for the database (sled), the master key, the initial operator token and the
    /// generated TLS CA (created 0700 if missing).
    #[arg(long, env = "GATEHOUSE_CP_DATA_DIR", default_value = "gatehouse-data", global = true)]
    data_dir: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// Address of the gRPC API (Management, ConfigSync, health, reflection).
    #[arg(long, env = "GATEHOUSE_CP_LISTEN", default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Address of /healthz and /metrics (Prometheus); "none" to turn it off.
    #[arg(long, env = "GATEHOUSE_CP_ADMIN_LISTEN", default_value = "127.0.0.1:7401")]
    admin_listen: String,
    /// TLS certificate (PEM, with its chain). Without --tls-cert/--tls-key the control plane
    /// serves a certificate from its own CA (DATA_DIR/tls/ca.pem).
    #[arg(long, env = "GATEHOUSE_CP_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "GATEHOUSE_CP_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Extra DNS name or IP address for the generated certificate (repeatable, or comma-separated).
    #[arg(long, env = "GATEHOUSE_CP_TLS_SAN", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Serve without TLS. Allowed only on a loopback address.
    #[arg(long, env = "GATEHOUSE_CP_PLAINTEXT", conflicts_with_all = ["tls_cert", "tls_key", "tls_san"])]
    plaintext: bool,
    /// Key sealing private keys and secrets in the database [default: DATA_DIR/master.key,
    /// created 0600 on first start]. Every control plane on one etcd needs the same key.
    #[arg(long, env = "GATEHOUSE_CP_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
    /// Seconds between HTTP/2 keepalive pings on data plane streams; a peer silent for as long
    /// again is dropped.
    #[arg(long, env = "GATEHOUSE_CP_KEEPALIVE", default_value_t = 10)]
    keepalive: u64,
    /// Seconds a data plane may lag the latest revision before `gateway list` shows it STALE.
    #[arg(long, env = "GATEHOUSE_CP_STALE_AFTER", default_value_t = 10)]
    stale_after: u64,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_message_bytes: usize,
    /// Seconds a client has to finish its TLS handshake before the connection is dropped.
    #[arg(long, env = "GATEHOUSE_CP_TLS_HANDSHAKE_TIMEOUT", default_value_t = 5)]
    tls_handshake_timeout: u64,
    /// Most ConfigSync streams one gateway token may hold open at once.
    #[arg(long, env = "GATEHOUSE_CP_MAX_STREAMS_PER_TOKEN", default_value_t = 256)]
    max_streams_per_token: usize,
    /// Largest PFX file accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_PFX_BYTES", default_value_t = 1024 * 1024)]
    max_pfx_bytes: usize,
    /// Most certificates accepted in one PFX file.
    #[arg(long, env = "GATEHOUSE_CP_MAX_CHAIN_LENGTH", default_value_t = 10)]
    max_chain_length: usize,
    /// Largest policy XML document accepted, in bytes.
    #[arg(long, env = "GATEHOUSE_CP_MAX_POLICY_BYTES", default_value_t = 64 * 1024)]
    max_policy_bytes: usize,
    /// Seconds between two reads of the files linked certificates come from (cert link).
    #[arg(long, env = "GATEHOUSE_CP_SOURCE_POLL", default_value_t = 10)]
    source_poll: u64,
    /// Seconds a web console session may sit unused before it is signed out.
    #[arg(long, env = "GATEHOUSE_CP_CONSOLE_IDLE_TIMEOUT", default_value_t = 900)]
    console_idle_timeout: u64,
    /// Log format: text or json.
    #[arg(long, env = "GATEHOUSE_CP_LOG_FORMAT", default_value = "text")]
    log_format: gatehouse_shared::process::LogFormat,
    /// Log filter, RUST_LOG syntax (e.g. "info", "gatehouse_control_plane=debug").
    #[arg(long, env = "GATEHOUSE_CP_LOG", default_value = "info")]
    log: String,
}

/// Maintenance commands; without one, the control plane serves.
#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Copies the sled store in --data-dir (tokens included) into an empty etcd prefix; stop
    /// the control plane first. Then start every control plane with --store etcd and the same
    /// --master-key-file.
    Migrate {
        /// Copy into the etcd given by --etcd-endpoints (and --etcd-prefix, TLS and user flags).
        #[arg(long, required = true)]
        to_etcd: bool,
    },
    /// Writes a backup of the store in --data-dir (every record at one revision, private keys and
    /// secrets sealed under the master key, and the tokens) to --out, mode 0600. While a control
    /// plane runs on --data-dir the backup comes from it (CreateBackup, operator token); else
    /// from the database directly (then the master key must be there).
    Backup(BackupArgs),
    /// Restores a backup into an empty --data-dir (the master key may be there already, or
    /// given with --master-key-file); start a control plane on it afterwards.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Re-seals every private key and secret of the store in --data-dir under a new master
    /// key, then makes the key file (DATA_DIR/master.key or --master-key-file) hold it and keeps
    /// the old key as KEY.old. Stop the control plane first.
    RotateMasterKey {
        /// The new key (32 bytes, mode 0600); made, random, if the file does not exist.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

/// `gatehouse-cp backup`: where the backup goes, and how to reach a running control plane.
#[derive(clap::Args, Debug)]
struct BackupArgs {
    /// The backup file to write.
    #[arg(long)]
    out: PathBuf,
    /// The running control plane to take it from [default: https://127.0.0.1:PORT of --listen,
    /// used when the database is in use].
    #[arg(long)]
    server: Option<String>,
    /// File holding an operator token [default: DATA_DIR/operator.token].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// CA the control plane's TLS certificate chains to [default: DATA_DIR/tls/ca.pem].
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// Where the configuration is kept.
#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// sled (embedded, one control plane) or etcd (several control planes on one etcd).
    #[arg(long, env = "GATEHOUSE_CP_STORE", default_value = "sled", value_parser = ["sled", "etcd"])]
    store: String,
    /// etcd client URLs (comma-separated, or the flag repeated), e.g. https://10.0.0.5:2379.
    #[arg(long, env = "GATEHOUSE_CP_ETCD_ENDPOINTS", value_delimiter = ',', global = true)]
    etcd_endpoints: Vec<String>,
    /// Prefix of every key Gatehouse keeps in etcd.
    #[arg(long, env = "GATEHOUSE_CP_ETCD_PREFIX", default_value = "/gatehouse", global = true)]
    etcd_prefix: String,
    /// CA certificate (PEM) that etcd's server certificates chain to (https endpoints).
    #[arg(long, env = "GATEHOUSE_CP_ETCD_CA_FILE", global = true)]
    etcd_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's client-certificate authentication.
    #[arg(long, env = "GATEHOUSE_CP_ETCD_CERT", requires = "etcd_key", global = true)]
    etcd_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "GATEHOUSE_CP_ETCD_KEY", requires = "etcd_cert", global = true)]
    etcd_key: Option<PathBuf>,
    /// etcd user (with --etcd-password-file).
    #[arg(long, env = "GATEHOUSE_CP_ETCD_USER", requires = "etcd_password_file", global = true)]
    etcd_user: Option<String>,
    /// File holding the etcd user's password.
    #[arg(long, env = "GATEHOUSE_CP_ETCD_PASSWORD_FILE", requires = "etcd_user", global = true)]
    etcd_password_file: Option<PathBuf>,
    /// Milliseconds one etcd request (or connection) may take before the write fails UNAVAILABLE.
    #[arg(long, env = "GATEHOUSE_CP_ETCD_TIMEOUT_MS", default_value_t = 2000, global = true)]
    etcd_timeout_ms: u64,
}

#[tokio::main]
async fn main() {
    // Flags, then GATEHOUSE_CP_* variables, then the --config file, then the defaults.
    let args: Args = gatehouse_shared::config_file::parse("gatehouse-cp", "GATEHOUSE_CP_CONFIG");
    gatehouse_shared::process::init_logging(&args.log, args.log_format);
    // Boxed: with etcd, serving and every maintenance command make one large future.
    Box::pin(gatehouse_shared::process::exit_on_error("gatehouse-cp", run(args))).await;
}

/// The etcd flags, checked.
#[cfg(feature = "etcd")]
fn etcd_options(args: &StoreArgs) -> anyhow::Result<gatehouse_control_plane::store::etcd::EtcdOptions> {
    anyhow::ensure!(!args.etcd_endpoints.is_empty(), "--store etcd needs --etcd-endpoints URL[,URL...]");
    for url in &args.etcd_endpoints {
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "--etcd-endpoints {url} is not an http:// or https:// URL"
        );
    }
    anyhow::ensure!(args.etcd_prefix.starts_with('/'), "--etcd-prefix {} must start with '/'", args.etcd_prefix);
    Ok(gatehouse_control_plane::store::etcd::EtcdOptions {
        endpoints: args.etcd_endpoints.clone(),
        prefix: args.etcd_prefix.clone(),
        ca_file: args.etcd_ca_file.clone(),
        client_identity: args.etcd_cert.clone().zip(args.etcd_key.clone()),
        user: args.etcd_user.clone().zip(args.etcd_password_file.clone()),
        timeout: Duration::from_millis(args.etcd_timeout_ms.max(100)),
    })
}

/// Where the configuration is kept, from the flags.
fn store_config(args: &StoreArgs) -> anyhow::Result<StoreConfig> {
    // etcd flags on a sled control plane mean a forgotten --store: it would serve another store.
    anyhow::ensure!(
        args.store == "etcd" || args.etcd_endpoints.is_empty(),
        "--etcd-endpoints is set but --store is sled: add --store etcd, or drop the etcd flags"
    );
    match args.store.as_str() {
        #[cfg(feature = "etcd")]
        "etcd" => Ok(StoreConfig::Etcd(etcd_options(args)?)),
        #[cfg(not(feature = "etcd"))]
        "etcd" => anyhow::bail!(
            "--store etcd: this gatehouse-cp was built without etcd support; build it with `cargo build --release -p gatehouse-control-plane --features etcd` (needs protoc)"
        ),
        _ => Ok(StoreConfig::Sled),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    match &args.command {
        Some(Command::Migrate { .. }) => return Box::pin(migrate(&args)).await,
        Some(Command::Backup(backup_args)) => return backup(&args, backup_args).await,
        Some(Command::Restore { from }) => return restore(&args, from),
        Some(Command::RotateMasterKey { new_key_file }) => return rotate_master_key(&args, new_key_file),
        None => {}
    }
    let store = store_config(&args.store)?;
    let transport = match (args.plaintext, args.tls_cert, args.tls_key) {
        (true, _, _) => Transport::Plaintext,
        (false, Some(cert), Some(key)) => Transport::TlsFiles { cert, key },
        _ => Transport::TlsGenerated { sans: args.tls_san },
    };
    let config = ControlPlaneConfig {
        transport,
        master_key_file: args.master_key_file,
        keepalive: Duration::from_secs(args.keepalive.max(1)),
        stale_after: Duration::from_secs(args.stale_after),
        tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout.max(1)),
        limits: Limits {
            max_message_bytes: args.max_message_bytes,
            max_pfx_bytes: args.max_pfx_bytes,
            max_chain_length: args.max_chain_length,
            max_policy_bytes: args.max_policy_bytes,
            max_streams_per_token: args.max_streams_per_token,
        },
        source_poll: Duration::from_secs(args.source_poll.max(1)),
        console_idle: Duration::from_secs(args.console_idle_timeout.max(1)),
        admin_listen: match args.admin_listen.as_str() {
            "none" => None,
            addr => Some(addr.parse().with_context(|| format!("--admin-listen {addr} is not an address"))?),
        },
        store,
        ..ControlPlaneConfig::new(args.data_dir, args.listen)
    };
    let control_plane = Box::pin(ControlPlane::bind(&config)).await?;
    let access = control_plane.access();
    if let Some(ca) = &access.ca_file {
        println!("gatehouse-cp TLS CA (give it to data planes and gatehousectl): {}", ca.display());
    }
    if let Some(token) = &access.initial_token_file {
        println!("gatehouse-cp initial operator token file: {}", token.display());
    }
    // Tests and scripts read these lines to learn the bound ports when listening on :0.
    let scheme = if control_plane.is_tls() { "https" } else { "http" };
    println!("gatehouse-cp listening on {} ({scheme})", control_plane.local_addr());
    if let Some(admin) = control_plane.admin_addr() {
        println!("gatehouse-cp admin (/healthz, /metrics) on {admin}");
    }
    control_plane.serve(gatehouse_shared::process::shutdown_signal()).await.context("serving")?;
    Ok(())
}

/// `gatehouse-cp migrate --to-etcd`: copies the sled store into etcd.
#[cfg(feature = "etcd")]
async fn migrate(args: &Args) -> anyhow::Result<()> {
    let options = etcd_options(&args.store)?;
    let key_file = args.master_key_file.clone().unwrap_or_else(|| args.data_dir.join("master.key"));
    let report = gatehouse_control_plane::store::migrate::sled_to_etcd(&args.data_dir, &key_file, &options).await?;
    println!(
        "copied revision {} ({} records, {} tokens) from {} into etcd under {}; start every control plane with --store etcd and --master-key-file {}",
        report.revision,
        report.records,
        report.tokens,
        args.data_dir.display(),
        options.prefix,
        key_file.display()
    );
    Ok(())
}

/// Without etcd support there is nothing to migrate to.
#[cfg(not(feature = "etcd"))]
async fn migrate(_: &Args) -> anyhow::Result<()> {
    anyhow::bail!("migrate --to-etcd: this gatehouse-cp was built without etcd support; build it with --features etcd")
}

/// The master key file: --master-key-file, else DATA_DIR/master.key.
fn key_file(args: &Args) -> PathBuf {
    args.master_key_file.clone().unwrap_or_else(|| args.data_dir.join("master.key"))
}

/// Backups, restores and key rotations work on the sled store in --data-dir; `more` ends the
/// refusal of an etcd store.
fn sled_only(args: &Args, command: &str, more: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.store.store == "sled",
        "{command} works on the sled store in --data-dir; with --store etcd, back up etcd itself (etcdctl snapshot save) and keep the master key apart from it{more}"
    );
    Ok(())
}

/// "1 record", "3 records".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `gatehouse-cp backup --out FILE`.
async fn backup(args: &Args, backup_args: &BackupArgs) -> anyhow::Result<()> {
    use gatehouse_control_plane::store::backup::{self, Origin, Remote};
    sled_only(args, "backup", "")?;
    let local = Remote::local(&args.data_dir, args.listen, args.plaintext);
    let running = Remote {
        url: backup_args.server.clone().unwrap_or(local.url),
        ca_file: backup_args.ca_file.clone().or(local.ca_file),
        token_file: backup_args.token_file.clone().unwrap_or(local.token_file),
    };
    let key_file = key_file(args);
    let (taken, origin) = backup::take(&args.data_dir, &key_file, &running, backup_args.server.is_some()).await?;
    backup::write(&taken, &backup_args.out)?;
    let from = match origin {
        Origin::Database => format!("the database in {}", args.data_dir.display()),
        Origin::ControlPlane(url) => format!("the control plane at {url}"),
    };
    println!(
        "backup of revision {} (configuration {}: {}, {}) from {from} written to {}; it opens nothing without the master key: keep the two apart",
        taken.revision,
        taken.config_id,
        count(taken.record_count(), "record"),
        count(taken.token_count(), "token"),
        backup_args.out.display()
    );
    Ok(())
}

/// `gatehouse-cp restore --from FILE`.
fn restore(args: &Args, from: &std::path::Path) -> anyhow::Result<()> {
    use gatehouse_control_plane::store::backup;
    sled_only(args, "restore", "")?;
    let taken = backup::read(from)?;
    let restored = backup::restore(&args.data_dir, &taken, &key_file(args))?;
    println!(
        "restored revision {} of configuration {} ({}, {}) into {} as configuration {} (data planes get a full snapshot); start gatehouse-cp --data-dir {} with the same master key",
        restored.revision,
        restored.backup_config_id,
        count(restored.records, "record"),
        count(restored.tokens, "token"),
        args.data_dir.display(),
        restored.config_id,
        args.data_dir.display()
    );
    Ok(())
}

/// `gatehouse-cp rotate-master-key --new-key-file F`.
fn rotate_master_key(args: &Args, new_key_file: &std::path::Path) -> anyhow::Result<()> {
    sled_only(
        args,
        "rotate-master-key",
        " (rotating the master key of an etcd store, which every control plane shares, is not built yet)",
    )?;
    let rotated =
        gatehouse_control_plane::store::backup::rotate_master_key(&args.data_dir, &key_file(args), new_key_file)?;
    if rotated.made_new_key {
        println!("made a new random key in {}", new_key_file.display());
    }
    println!(
        "re-sealed {} under the new key; {} holds it now, and the old key is in {}: start the control plane, check that it serves, then delete the old key (backups made before now open only with it: take a new backup)",
        count(rotated.resealed, "record"),
        rotated.key_file.display(),
        rotated.old_key_file.display()
    );
    Ok(())
}
