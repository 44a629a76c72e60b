//! Backups, restores and key rotations on real sled databases in temporary data directories.

use std::path::Path;

use gatehouse_shared::sealed::SealingKey;

use super::*;
use crate::model::Binding;
use crate::store::tests::{ANY, api, certificate};
use crate::tokens::{Role, Tokens};

/// A data directory as a control plane leaves it: a master key, and a store holding a
/// certificate, an API bound to it with a Basic password from a secret named value, and an
/// operator token. Returns the open store and its database.
async fn data_dir(dir: &Path) -> (Store, sled::Db) {
    std::fs::create_dir_all(dir).unwrap();
    let key = SealingKey::load_or_create(&dir.join("master.key")).unwrap();
    let db = sled::Config::new().path(dir.join("sled")).open().unwrap();
    let store = Store::open(db.clone(), key, Some(watermark(dir))).unwrap();
    store.upload_certificate("client", certificate("client"), &ANY).await.unwrap();
    store.put_api(api("orders", "/orders", Some(Binding::CertificateId("client".into()))), &ANY).await.unwrap();
    store.put_named_value("pw", "s3cret-value", true, &ANY).await.unwrap();
    let xml = r#"<policies><inbound><authentication-certificate certificate-id="client" />
        <authentication-basic username="svc" password="{{pw}}" /></inbound></policies>"#;
    store.set_api_policy("orders", crate::policy::parse(xml).unwrap(), &ANY).await.unwrap();
    Tokens::open(&db).unwrap().create("ops", Role::Operator, None).await.unwrap();
    (store, db)
}

/// The store in `dir`, opened under the key in `key_file` as a control plane opens it.
fn reopen(dir: &Path, key_file: &Path) -> Result<Store, StoreError> {
    let db = sled::Config::new().path(dir.join("sled")).open().unwrap();
    Store::open(db, SealingKey::load_or_create(key_file).unwrap(), Some(watermark(dir)))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nowhere: connecting fails at once.
fn unreachable(dir: &Path) -> Remote {
    Remote { url: "https://127.0.0.1:1".into(), ca_file: None, token_file: dir.join("operator.token") }
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_directory_at_its_revision() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("source");
    let (store, _db) = data_dir(&source).await;
    let private_key = store.state().certificates["client"].certificate.private_key.clone();
    let taken = store.backup().await.unwrap();
    store.put_api(api("later", "/later", None), &ANY).await.unwrap();

    let bytes = taken.encode();
    assert!(bytes.starts_with(MAGIC));
    assert!(!contains(&bytes, &private_key), "a private key in clear");
    assert!(!contains(&bytes, b"s3cret-value"), "a secret in clear");
    assert_eq!(taken.config_id, store.config_id());
    assert_eq!(taken.revision, store.state().revision - 1);

    let target = root.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::copy(source.join("master.key"), target.join("master.key")).unwrap();
    let restored = restore(&target, &Backup::decode(&bytes).unwrap(), &target.join("master.key")).unwrap();
    assert_eq!((restored.revision, restored.backup_config_id.as_str()), (taken.revision, store.config_id()));
    // A new history starts at the backup's revision: data planes get a full snapshot.
    assert_ne!(restored.config_id, store.config_id());

    let back = reopen(&target, &target.join("master.key")).unwrap();
    let state = back.state();
    assert_eq!(state.revision, taken.revision);
    assert_eq!(back.config_id(), restored.config_id);
    assert_eq!(state.certificates["client"].certificate.private_key, private_key);
    assert_eq!(state.apis["orders"].policy.basic.as_ref().unwrap().password, "{{pw}}");
    assert_eq!(state.named_values["pw"].value, "s3cret-value");
    assert!(!state.apis.contains_key("later"), "the backup is one revision: the write after it is not there");
    drop(back);
    let db = sled::Config::new().path(target.join("sled")).open().unwrap();
    assert_eq!(Tokens::open(&db).unwrap().list().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["ops"]);
    // The watermark is at the backup's revision: the restored database may not lose it.
    assert_eq!(
        std::fs::read_to_string(target.join("committed-revision")).unwrap(),
        format!("{} {}\n", restored.config_id, taken.revision)
    );
}

#[tokio::test]
async fn a_restore_refuses_a_directory_that_holds_something_or_another_key() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("source");
    let (store, _db) = data_dir(&source).await;
    let taken = store.backup().await.unwrap();

    let error = restore(&source, &taken, &source.join("master.key")).unwrap_err();
    assert!(
        matches!(&error, BackupError::NotEmpty { found, .. } if found == &["committed-revision", "sled"]),
        "{error}"
    );
    assert!(error.to_string().contains("holds committed-revision, sled"), "{error}");

    let other = root.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let missing = restore(&other, &taken, &other.join("master.key")).unwrap_err();
    assert!(matches!(missing, BackupError::NoMasterKey(_)), "{missing}");
    SealingKey::load_or_create(&other.join("master.key")).unwrap();
    let error = restore(&other, &taken, &other.join("master.key")).unwrap_err();
    assert!(matches!(error, BackupError::WrongBackupKey { .. }), "{error}");
    assert!(error.to_string().contains("does not open this backup"), "{error}");
    let left: Vec<_> = std::fs::read_dir(&other).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["master.key"], "a refused restore writes nothing");
}

#[tokio::test]
async fn the_database_is_read_directly_only_when_no_control_plane_holds_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cp");
    let (store, db) = data_dir(&dir).await;
    let key_file = dir.join("master.key");
    // Held (by this process's store): the control plane is asked, and it is nowhere here.
    let error = take(&dir, &key_file, &unreachable(&dir), false).await.unwrap_err();
    assert!(matches!(error, BackupError::Connect { .. }), "{error}");
    let revision = store.state().revision;
    drop((store, db));

    let (taken, origin) = take(&dir, &key_file, &unreachable(&dir), false).await.unwrap();
    assert_eq!((origin, taken.revision, taken.token_count()), (Origin::Database, revision, 1));
    let out = root.path().join("backup.ghb");
    write(&taken, &out).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(read(&out).unwrap().revision, revision);

    let error = take(&root.path().join("nothing"), &key_file, &unreachable(&dir), false).await.unwrap_err();
    assert!(matches!(error, BackupError::NoDatabase(_)), "{error}");
}

#[tokio::test]
async fn a_rotation_reseals_every_secret_and_the_old_key_opens_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cp");
    let (store, db) = data_dir(&dir).await;
    let before = store.state();
    let key_file = dir.join("master.key");
    let new_key_file = root.path().join("new.key");
    let old_bytes = std::fs::read(&key_file).unwrap();

    // Refused while the database is held, and nothing changes.
    let error = rotate_master_key(&dir, &key_file, &new_key_file).unwrap_err();
    assert!(matches!(error, BackupError::Locked(_)), "{error}");
    assert!(error.to_string().contains("stop it first"), "{error}");
    assert_eq!(std::fs::read(&key_file).unwrap(), old_bytes);
    assert!(!dir.join("master.key.old").exists());
    drop((store, db));

    let rotated = rotate_master_key(&dir, &key_file, &new_key_file).unwrap();
    assert!(rotated.made_new_key);
    assert_eq!(rotated.resealed, 3, "the certificate, the API and the secret named value");
    assert_eq!(std::fs::read(&key_file).unwrap(), std::fs::read(&new_key_file).unwrap());
    assert_eq!(std::fs::read(&rotated.old_key_file).unwrap(), old_bytes);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&rotated.old_key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let error = reopen(&dir, &rotated.old_key_file).err().expect("the old key is refused");
    assert!(matches!(error, StoreError::WrongMasterKey), "{error}");
    let after = reopen(&dir, &key_file).unwrap().state();
    assert_eq!(after.revision, before.revision, "a rotation is no new revision");
    assert_eq!(
        after.certificates["client"].certificate.private_key,
        before.certificates["client"].certificate.private_key
    );
    assert_eq!(after.apis["orders"].policy, before.apis["orders"].policy);
    assert_eq!(after.named_values["pw"].value, "s3cret-value");

    let again = rotate_master_key(&dir, &key_file, &new_key_file).unwrap_err();
    assert!(matches!(again, BackupError::SameKey { .. }), "{again}");
}

#[tokio::test]
async fn a_rotation_stopped_after_its_flush_finishes_when_run_again() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cp");
    drop(data_dir(&dir).await);
    let key_file = dir.join("master.key");
    let new_key_file = root.path().join("new.key");
    let old_bytes = std::fs::read(&key_file).unwrap();
    rotate_master_key(&dir, &key_file, &new_key_file).unwrap();
    // As if it had stopped before the key file was replaced: the store is sealed under the new
    // key, the key file still holds the old one.
    std::fs::write(&key_file, &old_bytes).unwrap();
    assert!(matches!(reopen(&dir, &key_file).err(), Some(StoreError::WrongMasterKey)));

    let rotated = rotate_master_key(&dir, &key_file, &new_key_file).unwrap();
    assert_eq!(rotated.resealed, 0, "nothing left to re-seal");
    assert_eq!(std::fs::read(&key_file).unwrap(), std::fs::read(&new_key_file).unwrap());
    assert_eq!(std::fs::read(&rotated.old_key_file).unwrap(), old_bytes);
    assert_eq!(reopen(&dir, &key_file).unwrap().state().named_values["pw"].value, "s3cret-value");
}

#[tokio::test]
async fn a_store_without_sealed_records_still_refuses_another_key() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    drop(reopen(dir, &dir.join("master.key")).unwrap());
    let error = reopen(dir, &dir.join("other.key")).err().expect("another key is refused");
    assert!(matches!(error, StoreError::WrongMasterKey), "{error}");
}
