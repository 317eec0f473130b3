//! The builder half of the conformance suite: what every [`ImageBuilder`] must do with images.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::{
    CHECK_LABEL, CollectedOutput, ConformanceFixture, ContextDir, MISSING_IMAGE, PATIENCE,
    STARTUP_LINE, build_spec, image_ref, namespace_filter, run_spec,
};
use crate::{BuildContext, EngineError, ImageBuilder, LogLine, RegistryAuth, RunOutcome, RunSpec};

/// Runs every builder check in turn; the push checks need `fixture.registry`.
pub async fn run_all(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    check_build_image(engine, fixture).await;
    check_build_failures(engine, fixture).await;
    check_build_from_tar(engine, fixture).await;
    check_run_to_completion(engine, fixture).await;
    check_run_timeout_and_cancel(engine, fixture).await;
    check_tag_and_remove_image(engine, fixture).await;
    match &fixture.registry {
        Some(registry) => check_push_image(engine, fixture, registry).await,
        None => eprintln!("conformance: no registry in the fixture, push checks skipped"),
    }
}

/// Asserts that no container of `check` is left.
async fn assert_no_container_of(
    engine: &dyn ImageBuilder,
    fixture: &ConformanceFixture,
    check: &str,
) {
    let mut filter = namespace_filter(fixture);
    filter.insert(CHECK_LABEL.to_owned(), check.to_owned());
    let left = engine.list_runs(&filter).await.expect("list_runs failed");
    assert!(left.is_empty(), "{check} left containers behind: {left:?}");
}

/// A build from a directory applies build args, labels and every tag, leaves out what
/// `.dockerignore` excludes, reports progress, and reuses the build cache.
pub async fn check_build_image(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    let dockerfile = format!(
        "FROM {}\nARG CODE=1\nENV EXIT_IMMEDIATELY=$CODE\nCOPY payload.txt /payload.txt\n",
        fixture.image
    );
    let dir = ContextDir::new(
        fixture,
        "build",
        &[
            ("build/Dockerfile", dockerfile.as_str()),
            ("payload.txt", "payload"),
            ("secret.txt", "never sent"),
            (".dockerignore", "secret.txt\n"),
        ],
    );
    let tags = vec![
        image_ref(fixture, "build", "one"),
        image_ref(fixture, "build", "two"),
    ];
    let build = || {
        let mut spec = build_spec(
            fixture,
            "build",
            BuildContext::Directory(dir.0.clone()),
            tags.clone(),
        );
        spec.dockerfile = "build/Dockerfile".to_owned();
        spec.build_args.insert("CODE".to_owned(), "7".to_owned());
        spec
    };
    let output = CollectedOutput::default();
    let id = engine
        .build_image(build(), &|l| output.push(l))
        .await
        .unwrap_or_else(|e| panic!("build_image failed: {e}"));
    assert!(id.starts_with("sha256:"), "image id {id:?}");
    let texts = output.texts();
    assert!(!texts.is_empty(), "a build reported no progress");
    assert!(
        texts
            .iter()
            .all(|t| !t.ends_with('\n') && !t.trim().is_empty()),
        "progress lines not trimmed: {texts:?}"
    );
    for tag in &tags {
        assert_eq!(
            engine.image_id(tag).await.expect("image_id failed"),
            Some(id.clone()),
            "tag {tag}"
        );
    }

    // The build args reached the image: it exits with CODE.
    let run = RunSpec {
        image: tags[0].clone(),
        ..run_spec(fixture, "build-run")
    };
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&run, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion of the built image failed");
    assert_eq!(outcome, RunOutcome::Exited(7), "{:?}", output.texts());

    // .dockerignore: COPY of an excluded file fails.
    std::fs::write(
        dir.0.join("build/Dockerfile"),
        format!("FROM {}\nCOPY secret.txt /secret.txt\n", fixture.image),
    )
    .expect("write Dockerfile");
    match engine.build_image(build(), &|_| {}).await {
        Err(EngineError::BuildFailed(message)) => {
            assert!(message.contains("secret.txt"), "message {message:?}")
        }
        other => panic!("COPY of a .dockerignore'd file gave {other:?}, want BuildFailed"),
    }
    std::fs::write(dir.0.join("build/Dockerfile"), &dockerfile).expect("write Dockerfile");

    // The same inputs again: every step comes from the cache, so the image is the same.
    let again = engine
        .build_image(build(), &|_| {})
        .await
        .expect("second build failed");
    assert_eq!(
        again, id,
        "a rebuild of unchanged files did not reuse the build cache"
    );

    // The image is listed by its labels, with its tags.
    let labelled = BTreeMap::from([(CHECK_LABEL.to_owned(), "build".to_owned())]);
    let listed = engine
        .list_images(&labelled)
        .await
        .expect("list_images failed");
    let image = listed
        .iter()
        .find(|i| i.id == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed:?}"));
    let mut listed_tags = image.tags.clone();
    listed_tags.sort();
    assert_eq!(listed_tags, tags);
    assert_eq!(
        image.labels.get(CHECK_LABEL).map(String::as_str),
        Some("build")
    );
    assert!(image.created_ms > 0, "{image:?}");
    let other = BTreeMap::from([(CHECK_LABEL.to_owned(), "no-such-check".to_owned())]);
    assert!(
        engine
            .list_images(&other)
            .await
            .expect("list_images failed")
            .is_empty()
    );

    for tag in &tags {
        engine.remove_image(tag).await.expect("remove_image failed");
    }
}

/// A missing Dockerfile, a missing file and a failing instruction are `BuildFailed`.
pub async fn check_build_failures(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    let dir = ContextDir::new(
        fixture,
        "build-fail",
        &[
            (
                "Dockerfile",
                &format!("FROM {}\nCOPY missing.txt /missing.txt\n", fixture.image),
            ),
            (
                "failing.Dockerfile",
                &format!(
                    "FROM {}\nENV EXIT_IMMEDIATELY=5\nRUN [\"/berth-testapp\"]\n",
                    fixture.image
                ),
            ),
        ],
    );
    let tag = image_ref(fixture, "build-fail", "x");
    let cases = [
        ("Dockerfile", "a COPY of a missing file"),
        ("failing.Dockerfile", "a RUN that exits 5"),
        ("no/such/Dockerfile", "a missing Dockerfile"),
    ];
    for (dockerfile, what) in cases {
        let mut spec = build_spec(
            fixture,
            "build-fail",
            BuildContext::Directory(dir.0.clone()),
            vec![tag.clone()],
        );
        spec.dockerfile = dockerfile.to_owned();
        match engine.build_image(spec, &|_| {}).await {
            Err(EngineError::BuildFailed(message)) => {
                assert!(!message.is_empty(), "{what}: BuildFailed without a message")
            }
            other => panic!("{what} gave {other:?}, want BuildFailed"),
        }
    }
    assert_eq!(
        engine.image_id(&tag).await.expect("image_id failed"),
        None,
        "a failed build left its tag"
    );
    let missing = build_spec(
        fixture,
        "build-fail",
        BuildContext::Directory(dir.0.join("no-such-dir")),
        vec![tag],
    );
    match engine.build_image(missing, &|_| {}).await {
        Err(EngineError::BuildFailed(message)) => {
            assert!(message.contains("no-such-dir"), "message {message:?}")
        }
        other => panic!("a missing context directory gave {other:?}, want BuildFailed"),
    }
}

/// A ready tar archive builds like a directory.
pub async fn check_build_from_tar(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    let dockerfile = format!("FROM {}\nCOPY hello.txt /hello.txt\n", fixture.image);
    let bytes = Bytes::from(super::archive_of(&[
        ("Dockerfile", dockerfile.as_str()),
        ("hello.txt", "hello"),
    ]));
    // In two chunks, as a stream would bring it.
    let (a, b) = (bytes.slice(..100), bytes.slice(100..));
    let stream = futures::stream::iter([Ok(a), Ok(b)]).boxed();
    let tag = image_ref(fixture, "build-tar", "x");
    let id = engine
        .build_image(
            build_spec(
                fixture,
                "build-tar",
                BuildContext::Tar(stream),
                vec![tag.clone()],
            ),
            &|_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("build_image from a tar stream failed: {e}"));
    assert_eq!(engine.image_id(&tag).await.expect("image_id"), Some(id));
    engine
        .remove_image(&tag)
        .await
        .expect("remove_image failed");
}

/// A throwaway run returns the exit code and output, and removes its container; a command
/// replaces the image's program; a missing image is `ImageNotFound`.
pub async fn check_run_to_completion(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    let mut spec = run_spec(fixture, "run");
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "3".to_owned());
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&spec, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion failed");
    assert_eq!(outcome, RunOutcome::Exited(3));
    let texts = output.texts();
    assert!(
        texts.iter().any(|t| t == "exiting immediately with code 3"),
        "output {texts:?}"
    );
    assert_no_container_of(engine, fixture, "run").await;

    let mut spec = run_spec(fixture, "run-cmd");
    spec.command = vec!["/berth-testapp".to_owned()];
    spec.env
        .insert("EXIT_IMMEDIATELY".to_owned(), "0".to_owned());
    let outcome = engine
        .run_to_completion(&spec, &|_| {}, &CancellationToken::new())
        .await
        .expect("run_to_completion with a command failed");
    assert_eq!(outcome, RunOutcome::Exited(0));
    assert_no_container_of(engine, fixture, "run-cmd").await;

    let mut spec = run_spec(fixture, "run-missing");
    spec.image = MISSING_IMAGE.to_owned();
    match engine
        .run_to_completion(&spec, &|_| {}, &CancellationToken::new())
        .await
    {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("a run of a missing image gave {other:?}, want ImageNotFound"),
    }
    assert_no_container_of(engine, fixture, "run-missing").await;
}

/// A run longer than its timeout, and a cancelled run, are killed and removed.
pub async fn check_run_timeout_and_cancel(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    // The fixture serves forever unless stopped.
    let mut spec = run_spec(fixture, "run-timeout");
    spec.timeout = Duration::from_secs(2);
    let output = CollectedOutput::default();
    let outcome = engine
        .run_to_completion(&spec, &|l| output.push(l), &CancellationToken::new())
        .await
        .expect("run_to_completion failed");
    assert_eq!(outcome, RunOutcome::TimedOut, "output {:?}", output.texts());
    assert_no_container_of(engine, fixture, "run-timeout").await;

    let spec = run_spec(fixture, "run-cancel");
    let cancel = CancellationToken::new();
    let output = CollectedOutput::default();
    let sink = |l: LogLine| {
        // Cancel once it demonstrably runs.
        if l.text.contains(STARTUP_LINE) {
            cancel.cancel();
        }
        output.push(l)
    };
    let run = engine.run_to_completion(&spec, &sink, &cancel);
    let outcome = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("a cancelled run did not end")
        .expect("run_to_completion failed");
    assert_eq!(
        outcome,
        RunOutcome::Cancelled,
        "output {:?}",
        output.texts()
    );
    assert_no_container_of(engine, fixture, "run-cancel").await;
}

/// Tags point at the same image; removing a tag leaves the image's other tags; removing a
/// missing reference is fine.
pub async fn check_tag_and_remove_image(engine: &dyn ImageBuilder, fixture: &ConformanceFixture) {
    let id = engine
        .image_id(&fixture.image)
        .await
        .expect("image_id failed")
        .expect("the fixture image exists");
    let tag = image_ref(fixture, "tag", "v1");
    engine
        .tag_image(&fixture.image, &tag)
        .await
        .expect("tag_image failed");
    assert_eq!(
        engine.image_id(&tag).await.expect("image_id"),
        Some(id.clone())
    );
    engine
        .remove_image(&tag)
        .await
        .expect("remove_image failed");
    assert_eq!(engine.image_id(&tag).await.expect("image_id"), None);
    assert_eq!(
        engine.image_id(&fixture.image).await.expect("image_id"),
        Some(id),
        "removing a tag removed the image's other tags"
    );
    engine
        .remove_image(&tag)
        .await
        .expect("removing a missing reference must be Ok");
    match engine.tag_image(MISSING_IMAGE, &tag).await {
        Err(EngineError::ImageNotFound { .. }) => {}
        other => panic!("tagging a missing image gave {other:?}, want ImageNotFound"),
    }
}

/// A push returns the registry's digest (the same when pushed again), reports progress, and
/// fails with `PushFailed` on bad credentials.
pub async fn check_push_image(
    engine: &dyn ImageBuilder,
    fixture: &ConformanceFixture,
    registry: &RegistryAuth,
) {
    let reference = format!("{}/{}/pushed:v1", registry.server, fixture.namespace);
    engine
        .tag_image(&fixture.image, &reference)
        .await
        .expect("tag_image failed");
    let output = CollectedOutput::default();
    let digest = engine
        .push_image(&reference, Some(registry), &|l| output.push(l))
        .await
        .unwrap_or_else(|e| panic!("push_image({reference}) failed: {e}"));
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "digest {digest:?}"
    );
    assert!(!output.texts().is_empty(), "a push reported no progress");
    let again = engine
        .push_image(&reference, Some(registry), &|_| {})
        .await
        .expect("second push failed");
    assert_eq!(
        again, digest,
        "pushing the same image twice gave two digests"
    );

    let wrong = RegistryAuth {
        password: format!("not-{}", registry.password),
        ..registry.clone()
    };
    let refused = format!("{}/{}/refused:v1", registry.server, fixture.namespace);
    engine
        .tag_image(&fixture.image, &refused)
        .await
        .expect("tag_image failed");
    match engine.push_image(&refused, Some(&wrong), &|_| {}).await {
        Err(EngineError::PushFailed { reference, reason }) => {
            assert_eq!(reference, refused);
            assert!(!reason.is_empty(), "PushFailed without a reason");
        }
        other => panic!("a push with a wrong password gave {other:?}, want PushFailed"),
    }
    let never_tagged = format!("{}/{}/never-tagged:v1", registry.server, fixture.namespace);
    match engine
        .push_image(&never_tagged, Some(registry), &|_| {})
        .await
    {
        Err(EngineError::ImageNotFound { .. } | EngineError::PushFailed { .. }) => {}
        other => panic!("a push of a missing image gave {other:?}"),
    }
    for r in [&reference, &refused] {
        engine.remove_image(r).await.expect("remove_image failed");
    }
}
