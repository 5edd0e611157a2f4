//! Every artifact backend against the real thing: a directory, the database (a SQLite file and
//! a PostgreSQL server of the test), and S3 (moto's S3-compatible server, over http and over
//! https with a CA only `tls.ca_file` trusts). Each runs the same checks: content-addressed puts,
//! whole reads checked against the hash, ranges within and across chunks, deletes.

use avb_artifacts::{ArtifactError, ArtifactStore, DATABASE_CHUNK_BYTES};
use avb_store::Store;
use avb_testkit::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use bytes::Bytes;
use futures::TryStreamExt as _;

async fn read(
    store: &ArtifactStore,
    artifact: &avb_workflows::artifact::ArtifactRef,
    range: Option<std::ops::Range<u64>>,
) -> Result<(std::ops::Range<u64>, Vec<u8>), ArtifactError> {
    let s = store.open(artifact, range).await?;
    let parts: Vec<Bytes> = s.stream.try_collect().await?;
    Ok((s.range, parts.concat()))
}

/// The checks every backend passes.
async fn exercise(store: ArtifactStore) {
    // Two and a half database chunks, every byte value.
    let len = DATABASE_CHUNK_BYTES * 5 / 2;
    let content: Vec<u8> = (0..=255u8).cycle().take(len as usize).collect();
    let artifact = store
        .put("audio", "wav", "audio/wav", Bytes::from(content.clone()))
        .await
        .expect("put");
    let again = store
        .put("audio", "wav", "audio/wav", Bytes::from(content.clone()))
        .await
        .expect("put again");
    assert_eq!(artifact, again, "content-addressed");
    assert_eq!(store.get(&artifact).await.expect("get"), content);

    let boundary = DATABASE_CHUNK_BYTES;
    for (asked, expected) in [
        (None, 0..len),
        (Some(10..20), 10..20),
        (Some(boundary - 5..boundary + 5), boundary - 5..boundary + 5),
        (Some(boundary..2 * boundary), boundary..2 * boundary),
        (Some(len - 10..len + 1_000), len - 10..len),
    ] {
        let (range, bytes) = read(&store, &artifact, asked.clone())
            .await
            .unwrap_or_else(|e| panic!("{asked:?}: {e}"));
        assert_eq!(range, expected);
        assert!(
            bytes == content[expected.start as usize..expected.end as usize],
            "bytes of {asked:?}"
        );
    }
    assert!(matches!(
        read(&store, &artifact, Some(len..len + 1)).await,
        Err(ArtifactError::BadRange { .. })
    ));

    store.check().await.expect("check");

    // A job's stream: chunks by index, the end marker, removal of both.
    assert_eq!(
        store.stream_chunk("job-s", 0).await.expect("none yet"),
        None
    );
    for i in 0..3u32 {
        let pcm = Bytes::from(vec![u8::try_from(i).expect("small"); 600]);
        store
            .put_stream_chunk("job-s", i, pcm)
            .await
            .expect("chunk");
    }
    assert_eq!(
        store.stream_chunk("job-s", 1).await.expect("chunk 1"),
        Some(Bytes::from(vec![1u8; 600]))
    );
    let end = avb_artifacts::stream::StreamEnd {
        chunks: 3,
        samples: 900,
        sample_rate: 24_000,
        audio: artifact.clone(),
    };
    store.put_stream_end("job-s", &end).await.expect("end");
    assert_eq!(store.stream_end("job-s").await.expect("end"), Some(end));
    assert_eq!(store.finished_streams().await.expect("finished"), ["job-s"]);
    assert_eq!(store.remove_stream("job-s").await.expect("remove"), 4);
    assert!(store.streams().await.expect("streams").is_empty());
    assert_eq!(store.stream_chunk("job-s", 0).await.expect("gone"), None);
    assert!(store.delete(&artifact).await.expect("delete"));
    assert!(!store.delete(&artifact).await.expect("delete again"));
    assert!(matches!(
        store.get(&artifact).await,
        Err(ArtifactError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    exercise(ArtifactStore::local(dir.path()).expect("store")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_on_sqlite() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("avb.db")))
        .await
        .expect("sqlite");
    exercise(ArtifactStore::in_database(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_on_postgres() {
    let server = avb_testkit::pg::PgServer::start().await;
    let store = Store::connect(&server.url).await.expect("postgres");
    exercise(ArtifactStore::in_database(store.clone())).await;
    store.close().await;
}

fn s3_options(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", endpoint.to_string()),
        ("aws_access_key_id", ACCESS_KEY_ID.into()),
        ("aws_secret_access_key", SECRET_ACCESS_KEY.into()),
        ("aws_region", REGION.into()),
    ]
}

fn s3_store(bucket: &str, prefix: &str, options: &[(&'static str, String)]) -> ArtifactStore {
    let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ArtifactStore::s3(bucket, prefix, &options).expect("s3 store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_over_http() {
    avb_tls::install_provider();
    let server = S3Server::start("avb-audio");
    let mut options = s3_options(&server.endpoint());
    // Refused without the explicit opt-in: plain http would carry the request signatures and
    // the audio in the clear.
    let refused = ArtifactStore::s3(
        "avb-audio",
        "prod",
        &options
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    let message = refused.expect_err("plain http refused").to_string();
    assert!(message.contains("AWS_ALLOW_HTTP=true"), "{message}");

    options.push(("aws_allow_http", "true".into()));
    let store = s3_store("avb-audio", "prod", &options);
    assert_eq!(store.description(), "s3://avb-audio/prod");
    let kept = store
        .put("audio", "wav", "audio/wav", Bytes::from_static(b"RIFF"))
        .await
        .expect("put");
    assert!(
        server.keys().contains(&format!("prod/{}", kept.key)),
        "the object is in the bucket under the prefix: {:?}",
        server.keys()
    );
    exercise(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_over_https_with_a_private_ca() {
    let ca = avb_testkit::tls::TestCa::new();
    let server = S3Server::start("avb-audio");
    let front = avb_testkit::tls::TlsFront::start(&ca, server.port).await;
    avb_tls::init(Some(&ca.ca_file())).expect("trust the test CA");
    let options = s3_options(&format!("https://localhost:{}", front.port));
    exercise(s3_store("avb-audio", "", &options)).await;
}
