use avb_store::{Store, StoredArtifact};

on_both_databases!(artifacts_are_stored_in_chunks_once_and_deleted);

/// Every byte value (NUL included) survives, chunks split at `chunk_bytes`, a second put of the
/// same key writes nothing, and delete removes the row and its chunks.
async fn artifacts_are_stored_in_chunks_once_and_deleted(store: Store) {
    let content: Vec<u8> = (0..=255u8).cycle().take(2_500).collect();
    let artifact = StoredArtifact {
        key: "audio/abc.wav".into(),
        sha256: "abc".into(),
        size_bytes: content.len() as u64,
        content_type: "audio/wav".into(),
        chunk_bytes: 1_000,
    };
    assert!(store.put_artifact(&artifact, &content).await.expect("put"));
    assert!(
        !store
            .put_artifact(&artifact, &content)
            .await
            .expect("again"),
        "a second put of a content-addressed key writes nothing"
    );
    assert_eq!(
        store.artifact(&artifact.key).await.expect("read"),
        Some(artifact.clone())
    );
    assert_eq!(artifact.chunks_of(&(999..1_001)), 0..2);
    assert_eq!(artifact.chunks_of(&(2_000..2_500)), 2..3);
    let mut read = Vec::new();
    for seq in 0..3 {
        let chunk = store
            .artifact_chunk(&artifact.key, seq)
            .await
            .expect("chunk");
        read.extend(chunk.expect("chunk exists"));
    }
    assert_eq!(read, content);
    assert_eq!(
        store
            .artifact_chunk(&artifact.key, 3)
            .await
            .expect("past end"),
        None
    );
    assert_eq!(
        store.artifact_keys("audio/").await.expect("keys"),
        vec![artifact.key.clone()]
    );
    assert!(
        store
            .artifact_keys("video/")
            .await
            .expect("keys")
            .is_empty()
    );

    let short = StoredArtifact {
        key: "audio/short.wav".into(),
        size_bytes: 3,
        ..artifact.clone()
    };
    let err = store
        .put_artifact(&short, &content)
        .await
        .expect_err("size mismatch");
    assert!(
        err.to_string().contains("says 3 bytes but has 2500"),
        "{err}"
    );
    assert_eq!(store.artifact(&short.key).await.expect("read"), None);

    assert!(store.delete_artifact(&artifact.key).await.expect("delete"));
    assert!(!store.delete_artifact(&artifact.key).await.expect("again"));
    assert_eq!(store.artifact(&artifact.key).await.expect("read"), None);
    assert_eq!(
        store.artifact_chunk(&artifact.key, 0).await.expect("chunk"),
        None
    );
}
