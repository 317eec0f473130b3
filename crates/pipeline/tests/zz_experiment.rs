//! Temporary experiment (to be deleted): do dropped builds leave labelled containers?
use std::collections::BTreeMap;
use std::time::Duration;
use berth_engine::{BuildContext, BuildSpec, DockerEngine, Engine};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment() {
    let engine = DockerEngine::connect().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut left_total = 0;
    for i in 0..30u64 {
        std::fs::write(dir.path().join("Dockerfile"), format!("FROM berth-testapp-shell:latest\nENV A={i}\nENV B={i}\nCOPY Dockerfile /x\n")).unwrap();
        let labels = BTreeMap::from([("berth.namespace".to_owned(), format!("bt-exp-{i}"))]);
        let spec = BuildSpec { context: BuildContext::Directory(dir.path().to_owned()), dockerfile: String::new(), tags: vec![format!("bt-exp:{i}")], build_args: BTreeMap::new(), labels: labels.clone(), registry_auth: vec![] };
        let cut = Duration::from_millis(500 + (i * 53) % 1200);
        let r = tokio::time::timeout(cut, engine.build_image(spec, &|_| {})).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let left = engine.list_containers(&labels).await.unwrap();
        if !left.is_empty() { left_total += 1; }
        println!("{i} cut {cut:?} finished={} left={:?}", r.is_ok(), left.iter().map(|c| (c.name.clone(), c.state)).collect::<Vec<_>>());
        for c in left { let _ = engine.stop_instance(&c.id, Duration::ZERO).await; }
        let _ = engine.remove_image(&format!("bt-exp:{i}")).await;
    }
    println!("builds that left a container: {left_total}");
}
