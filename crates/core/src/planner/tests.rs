//! Table-driven tests of the planner and of rollout transitions.

use super::*;
use crate::app::Rollout;
use crate::spec::RolloutStrategy;

const NOW: Millis = 1_000_000;

fn app(replicas: u32, target: u32, phase: RolloutPhase) -> App {
    let mut rollout = Rollout::start(target, "test", NOW - 5_000);
    rollout.phase = phase;
    App {
        name: "web".into(),
        team: "default".into(),
        replicas,
        strategy: RolloutStrategy::default(),
        dependencies: vec![],
        routes: Default::default(),
        current_revision: target,
        stable_revision: Some(1),
        latest_revision: target,
        rollout,
        next_ordinal: 100,
        idle_timeout_secs: None,
        idled: None,
        autoscale: None,
        created_at: 0,
        updated_at: 0,
        version: 1,
    }
}

/// Instance shorthand: `ordinal`, `revision`, and a state word.
fn inst(ordinal: u64, revision: u32, state: &str) -> ObservedInstance {
    let mut i = ObservedInstance {
        container_id: format!("c{ordinal}"),
        name: format!("web-{ordinal}"),
        ordinal,
        revision,
        restarts: 0,
        phase: InstancePhase::Running,
        created_at: NOW - 60_000,
        started_at: Some(NOW - 60_000),
        readiness: Readiness::Ready {
            since: NOW - 50_000,
        },
        liveness: Liveness::Healthy,
        last_failure: None,
        evicted: false,
    };
    match state {
        "ready" => {}
        "starting" => {
            i.phase = InstancePhase::Starting;
            i.readiness = Readiness::Unknown;
        }
        "unknown" => i.readiness = Readiness::Unknown,
        "notready" => {
            i.readiness = Readiness::NotReady { since: NOW - 1_000 };
            i.last_failure = Some("HTTP 500".into());
        }
        "justready" => i.readiness = Readiness::Ready { since: NOW - 100 },
        "unhealthy" => {
            i.liveness = Liveness::Failing { since: NOW - 1_000 };
            i.readiness = Readiness::NotReady { since: NOW - 1_000 };
        }
        "terminating" => i.phase = InstancePhase::Terminating,
        // Exited long after it started: a crash count reset.
        "killed" => {
            i.phase = InstancePhase::Exited {
                finished_at: NOW - 10,
                exit_code: Some(137),
            }
        }
        other => panic!("unknown state {other}"),
    }
    i
}

fn crashed(ordinal: u64, revision: u32, restarts: u32, finished_ago: Millis) -> ObservedInstance {
    let mut i = inst(ordinal, revision, "ready");
    i.restarts = restarts;
    i.started_at = Some(NOW - finished_ago - 500);
    i.phase = InstancePhase::Exited {
        finished_at: NOW - finished_ago,
        exit_code: Some(3),
    };
    i
}

/// A compact rendering of a plan's actions: `+r2` start revision 2, `-web-3` stop.
fn summary(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .actions
        .iter()
        .map(|a| match a {
            Action::Start {
                revision,
                restarts: 0,
                ..
            } => format!("+r{revision}"),
            Action::Start {
                revision, restarts, ..
            } => format!("+r{revision}x{restarts}"),
            Action::Stop { instance, .. } => format!("-{instance}"),
        })
        .collect();
    out.sort();
    out
}

fn run(app: &App, instances: &[ObservedInstance]) -> Plan {
    plan(&PlanInput {
        app,
        instances,
        start_failure: None,
        backoff: Backoff::default(),
        now: NOW,
        canary_traffic: None,
    })
}

#[test]
fn steady_state_and_scaling() {
    use RolloutPhase::*;
    let cases: Vec<(&str, App, Vec<ObservedInstance>, Vec<&str>)> = vec![
        (
            "fresh app starts all replicas at once",
            app(3, 1, Progressing),
            vec![],
            vec!["+r1", "+r1", "+r1"],
        ),
        (
            "whole app does nothing",
            app(2, 1, Complete),
            vec![inst(1, 1, "ready"), inst(2, 1, "ready")],
            vec![],
        ),
        (
            "after a Berth restart, unknown readiness is left alone",
            app(2, 1, Complete),
            vec![inst(1, 1, "unknown"), inst(2, 1, "unknown")],
            vec![],
        ),
        (
            "scale up adds the difference",
            app(4, 1, Complete),
            vec![inst(1, 1, "ready")],
            vec!["+r1", "+r1", "+r1"],
        ),
        (
            "scale down removes not-ready, then newest",
            app(2, 1, Complete),
            vec![
                inst(1, 1, "ready"),
                inst(2, 1, "notready"),
                inst(3, 1, "ready"),
                inst(4, 1, "ready"),
            ],
            vec!["-web-2", "-web-4"],
        ),
        (
            "scale down prefers unknown over ready",
            app(1, 1, Complete),
            vec![inst(1, 1, "ready"), inst(2, 1, "unknown")],
            vec!["-web-2"],
        ),
        (
            "scale to zero",
            app(0, 1, Complete),
            vec![inst(1, 1, "ready"), inst(2, 1, "starting")],
            vec!["-web-1", "-web-2"],
        ),
        (
            "terminating instances do not count",
            app(2, 1, Complete),
            vec![inst(1, 1, "ready"), inst(2, 1, "terminating")],
            vec!["+r1"],
        ),
    ];
    for (name, app, instances, want) in cases {
        assert_eq!(summary(&run(&app, &instances)), want, "{name}");
    }
}

#[test]
fn rolling_upgrade_respects_surge_and_unavailable() {
    use RolloutPhase::*;
    let with_strategy = |surge: u32, unavailable: u32| {
        let mut a = app(3, 2, Progressing);
        a.strategy.max_surge = surge;
        a.strategy.max_unavailable = unavailable;
        a
    };
    let old3 = || {
        vec![
            inst(1, 1, "ready"),
            inst(2, 1, "ready"),
            inst(3, 1, "ready"),
        ]
    };
    let cases: Vec<(&str, App, Vec<ObservedInstance>, Vec<&str>)> = vec![
        (
            "surge 1: one new, no old stopped yet",
            with_strategy(1, 0),
            old3(),
            vec!["+r2"],
        ),
        (
            "surge 2: two new",
            with_strategy(2, 0),
            old3(),
            vec!["+r2", "+r2"],
        ),
        (
            "unavailable 1, surge 0: stop one old first",
            with_strategy(0, 1),
            old3(),
            vec!["-web-3"],
        ),
        (
            "unavailable 1, surge 1: both at once",
            with_strategy(1, 1),
            old3(),
            vec!["+r2", "-web-3"],
        ),
        (
            "new instance not ready yet: wait",
            with_strategy(1, 0),
            {
                let mut v = old3();
                v.push(inst(4, 2, "starting"));
                v
            },
            vec![],
        ),
        (
            "new instance ready: retire one old, start the next new",
            with_strategy(1, 0),
            {
                let mut v = old3();
                v.push(inst(4, 2, "ready"));
                v
            },
            vec!["-web-3"],
        ),
        (
            "old one is terminating: start the next new",
            with_strategy(1, 0),
            vec![
                inst(1, 1, "ready"),
                inst(2, 1, "ready"),
                inst(3, 1, "terminating"),
                inst(4, 2, "ready"),
            ],
            vec!["+r2"],
        ),
        (
            "old not-ready instances go at once",
            with_strategy(1, 0),
            vec![
                inst(1, 1, "ready"),
                inst(2, 1, "notready"),
                inst(3, 1, "ready"),
            ],
            vec!["+r2", "-web-2"],
        ),
        (
            "last step: all new ready, old removed",
            with_strategy(1, 0),
            vec![
                inst(1, 1, "ready"),
                inst(4, 2, "ready"),
                inst(5, 2, "ready"),
                inst(6, 2, "ready"),
            ],
            vec!["-web-1"],
        ),
        (
            "min-ready not yet passed: the new instance does not count",
            {
                let mut a = with_strategy(1, 0);
                a.strategy.min_ready_ms = 5_000;
                a
            },
            {
                let mut v = old3();
                v.push(inst(4, 2, "justready"));
                v
            },
            vec![],
        ),
    ];
    for (name, app, instances, want) in cases {
        assert_eq!(summary(&run(&app, &instances)), want, "{name}");
    }
}

#[test]
fn never_fewer_available_than_allowed_during_a_rollout() {
    // Simulate a whole rollout step by step: apply each plan, mark started instances ready at
    // the next step, and check availability never drops below replicas - max_unavailable.
    for (replicas, surge, unavailable) in [(3, 1, 0), (5, 2, 1), (4, 0, 2), (10, 3, 0), (1, 1, 0)] {
        let mut a = app(replicas, 2, RolloutPhase::Progressing);
        a.strategy.max_surge = surge;
        a.strategy.max_unavailable = unavailable;
        let mut instances: Vec<ObservedInstance> =
            (1..=replicas as u64).map(|o| inst(o, 1, "ready")).collect();
        let mut used: std::collections::HashSet<u64> =
            instances.iter().map(|i| i.ordinal).collect();
        for step in 0..100 {
            let p = run(&a, &instances);
            // The executor stores the plan's next ordinal with the app before starting.
            a.next_ordinal = p.next_ordinal;
            for action in &p.actions {
                match action {
                    Action::Start {
                        ordinal, revision, ..
                    } => {
                        assert!(used.insert(*ordinal), "ordinal {ordinal} handed out twice");
                        instances.push(inst(*ordinal, *revision, "starting"));
                    }
                    Action::Stop { container_id, .. } => {
                        instances.retain(|i| &i.container_id != container_id)
                    }
                }
            }
            let available = instances.iter().filter(|i| i.is_available(0, NOW)).count();
            assert!(
                available + unavailable as usize >= replicas as usize,
                "{replicas}/{surge}/{unavailable} step {step}: only {available} available"
            );
            assert!(
                instances.len() <= (replicas + surge) as usize,
                "surge exceeded at step {step}"
            );
            if p.rollout == Some(RolloutUpdate::Complete) {
                assert!(instances.iter().all(|i| i.revision == 2));
                assert_eq!(instances.len(), replicas as usize);
                break;
            }
            assert!(
                step < 99,
                "rollout {replicas}/{surge}/{unavailable} never completed"
            );
            for i in &mut instances {
                if i.phase == InstancePhase::Starting {
                    i.phase = InstancePhase::Running;
                    i.readiness = Readiness::Ready { since: NOW - 1 };
                }
            }
        }
    }
}

#[test]
fn crashed_instances_back_off() {
    use RolloutPhase::*;
    let cases: Vec<(&str, Vec<ObservedInstance>, Vec<&str>, Option<u64>)> = vec![
        (
            "killed after a long run: replaced at once",
            vec![inst(1, 1, "ready"), inst(2, 1, "killed")],
            vec!["+r1", "-web-2"],
            None,
        ),
        (
            "first quick crash restarts at once",
            vec![crashed(1, 1, 0, 10)],
            vec!["+r1x1", "-web-1"],
            None,
        ),
        (
            "second quick crash waits 1 s",
            vec![crashed(1, 1, 1, 400)],
            vec![],
            Some(600),
        ),
        (
            "second quick crash, 1 s passed",
            vec![crashed(1, 1, 1, 1_000)],
            vec!["+r1x2", "-web-1"],
            None,
        ),
        (
            "fifth crash waits 8 s",
            vec![crashed(1, 1, 4, 5_000)],
            vec![],
            Some(3_000),
        ),
        (
            "fifth crash after 8 s",
            vec![crashed(1, 1, 4, 8_000)],
            vec!["+r1x5", "-web-1"],
            None,
        ),
        (
            "exited instance of an old revision is just removed",
            vec![inst(1, 1, "ready"), crashed(2, 0, 0, 10)],
            vec!["-web-2"],
            None,
        ),
    ];
    for (name, instances, want, requeue) in cases {
        let a = app(
            instances.iter().filter(|i| i.revision == 1).count() as u32,
            1,
            Complete,
        );
        let p = run(&a, &instances);
        assert_eq!(summary(&p), want, "{name}");
        assert_eq!(p.requeue_after_ms, requeue, "{name}");
        if requeue.is_some() {
            assert_eq!(p.backing_off.len(), 1, "{name}");
        }
    }
}

#[test]
fn surplus_tombstones_are_removed_without_replacement() {
    let a = app(1, 1, RolloutPhase::Complete);
    let p = run(&a, &[inst(1, 1, "ready"), crashed(2, 1, 2, 10)]);
    assert_eq!(summary(&p), vec!["-web-2"]);
    assert!(p.backing_off.is_empty());
}

#[test]
fn unhealthy_instances_are_replaced_first() {
    let a = app(2, 1, RolloutPhase::Complete);
    // Failing liveness: start a replacement, keep the failing one for now.
    let p = run(&a, &[inst(1, 1, "ready"), inst(2, 1, "unhealthy")]);
    assert_eq!(summary(&p), vec!["+r1"]);
    // Replacement still starting: nothing to do.
    let p = run(
        &a,
        &[
            inst(1, 1, "ready"),
            inst(2, 1, "unhealthy"),
            inst(3, 1, "starting"),
        ],
    );
    assert_eq!(summary(&p), Vec::<String>::new());
    // Replacement ready: the failing one goes.
    let p = run(
        &a,
        &[
            inst(1, 1, "ready"),
            inst(2, 1, "unhealthy"),
            inst(3, 1, "ready"),
        ],
    );
    assert_eq!(summary(&p), vec!["-web-2"]);
    // Replacement never ready: the failing one goes after a progress deadline.
    let mut stuck = inst(2, 1, "unhealthy");
    stuck.liveness = Liveness::Failing {
        since: NOW - 60_000,
    };
    let p = run(&a, &[inst(1, 1, "ready"), stuck, inst(3, 1, "notready")]);
    assert_eq!(summary(&p), vec!["-web-2"]);
}

#[test]
fn rollout_outcomes() {
    use RolloutPhase::*;
    let failure = |permanent| StartFailure {
        revision: 2,
        reason: "image nope:1 not found".into(),
        at: NOW - 100,
        attempts: 1,
        permanent,
    };
    let old_and_new = |state: &str| vec![inst(1, 1, "ready"), inst(2, 2, state)];
    let stale = |mut a: App| {
        a.rollout.progress_at = NOW - 61_000;
        a
    };
    let cases: Vec<(&str, App, Vec<ObservedInstance>, Option<StartFailure>, Option<RolloutUpdate>)> = vec![
        ("all new and available: complete", app(1, 2, Progressing), vec![inst(2, 2, "ready")], None, Some(RolloutUpdate::Complete)),
        ("old left: progress", app(1, 2, Progressing), old_and_new("ready"), None, Some(RolloutUpdate::Progress { available: 1 })),
        ("waiting within the deadline", app(1, 2, Progressing), old_and_new("starting"), None, None),
        (
            "deadline passed",
            stale(app(1, 2, Progressing)),
            old_and_new("notready"),
            None,
            Some(RolloutUpdate::Failed {
                reason: "revision 2 not ready within 60 s (0 of 1 instances available); last probe: HTTP 500".into(),
            }),
        ),
        (
            "image missing fails at once",
            app(1, 2, Progressing),
            vec![inst(1, 1, "ready")],
            Some(failure(true)),
            Some(RolloutUpdate::Failed { reason: "image nope:1 not found".into() }),
        ),
        ("a transient start failure waits", app(1, 2, Progressing), vec![inst(1, 1, "ready")], Some(failure(false)), None),
        ("complete apps have no update", app(1, 2, Complete), vec![inst(1, 1, "ready")], None, None),
        ("scaled to zero completes", app(0, 2, Progressing), vec![], None, Some(RolloutUpdate::Complete)),
    ];
    for (name, app, instances, start_failure, want) in cases {
        let p = plan(&PlanInput {
            app: &app,
            instances: &instances,
            start_failure: start_failure.as_ref(),
            backoff: Backoff::default(),
            now: NOW,
            canary_traffic: None,
        });
        assert_eq!(p.rollout, want, "{name}");
    }
}

#[test]
fn failed_start_blocks_new_starts_until_backoff() {
    let a = app(2, 2, RolloutPhase::Progressing);
    let failure = StartFailure {
        revision: 2,
        reason: "x".into(),
        at: NOW - 100,
        attempts: 3,
        permanent: false,
    };
    let p = plan(&PlanInput {
        app: &a,
        instances: &[inst(1, 1, "ready")],
        start_failure: Some(&failure),
        backoff: Backoff::default(),
        now: NOW,
        canary_traffic: None,
    });
    assert!(p.actions.is_empty());
    assert_eq!(p.requeue_after_ms, Some(1_900));
}

#[test]
fn advancing_the_rollout() {
    use RolloutPhase::*;
    // Progressing + failed with a stable revision → rolling back to it.
    let mut a = app(3, 2, Progressing);
    let events = advance_rollout(
        &mut a,
        &RolloutUpdate::Failed {
            reason: "revision 2 not ready within 60 s".into(),
        },
        NOW,
    );
    assert_eq!(a.rollout.phase, RollingBack);
    assert_eq!(a.current_revision, 1);
    assert_eq!(a.rollout.failed_revision, Some(2));
    assert_eq!(a.rollout.started_at, NOW);
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::RolloutFailed, EventKind::RollbackStarted]
    );
    assert_eq!(
        events[1].message,
        "revision 2 not ready within 60 s → rolling back to revision 1"
    );

    // The rollback completes → rolled back, stable stays 1.
    let events = advance_rollout(&mut a, &RolloutUpdate::Complete, NOW + 1);
    assert_eq!(a.rollout.phase, RolledBack);
    assert_eq!(a.stable_revision, Some(1));
    assert_eq!(events[0].kind, EventKind::RolledBack);
    assert!(
        a.rollout.message.contains("after revision 2 failed"),
        "{}",
        a.rollout.message
    );

    // A rollback that fails too → failed.
    let mut a = app(3, 2, Progressing);
    advance_rollout(&mut a, &RolloutUpdate::Failed { reason: "x".into() }, NOW);
    advance_rollout(
        &mut a,
        &RolloutUpdate::Failed { reason: "y".into() },
        NOW + 1,
    );
    assert_eq!(a.rollout.phase, Failed);
    assert_eq!(a.rollout.message, "rollback to revision 1 failed too: y");

    // First deploy fails: nothing to roll back to.
    let mut a = app(3, 1, Progressing);
    a.stable_revision = None;
    advance_rollout(
        &mut a,
        &RolloutUpdate::Failed {
            reason: "image gone".into(),
        },
        NOW,
    );
    assert_eq!(a.rollout.phase, Failed);
    assert_eq!(a.current_revision, 1);

    // Completion marks the revision stable.
    let mut a = app(3, 2, Progressing);
    let events = advance_rollout(&mut a, &RolloutUpdate::Complete, NOW);
    assert_eq!((a.rollout.phase, a.stable_revision), (Complete, Some(2)));
    assert_eq!(events[0].message, "revision 2 is running on 3 instances");

    // Progress moves the deadline.
    let mut a = app(3, 2, Progressing);
    advance_rollout(&mut a, &RolloutUpdate::Progress { available: 2 }, NOW + 7);
    assert_eq!((a.rollout.available, a.rollout.progress_at), (2, NOW + 7));
}

/// The ordinals a plan's starts carry, in action order.
fn start_ordinals(plan: &Plan) -> Vec<u64> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Start { ordinal, .. } => Some(*ordinal),
            Action::Stop { .. } => None,
        })
        .collect()
}

#[test]
fn starts_take_fresh_ordinals() {
    use RolloutPhase::*;
    let with_next = |mut a: App, next: u64| {
        a.next_ordinal = next;
        a
    };
    let old_exited = |ordinal: u64| {
        let mut i = inst(ordinal, 1, "killed");
        i.revision = 1;
        i
    };
    // (case, app, instances, ordinals of the starts in action order, next_ordinal after)
    let cases: Vec<(&str, App, Vec<ObservedInstance>, Vec<u64>, u64)> = vec![
        (
            "a fresh app numbers its instances from 0",
            with_next(app(3, 1, Progressing), 0),
            vec![],
            vec![0, 1, 2],
            3,
        ),
        (
            "scale up continues from next_ordinal, not from the instances' ordinals",
            with_next(app(4, 1, Complete), 100),
            vec![inst(1, 1, "ready"), inst(2, 1, "ready")],
            vec![100, 101],
            102,
        ),
        (
            "nothing to start leaves next_ordinal as it is",
            with_next(app(2, 1, Complete), 100),
            vec![inst(1, 1, "ready"), inst(2, 1, "ready")],
            vec![],
            100,
        ),
        (
            "an instance beyond next_ordinal (store restored from a backup) is never reused",
            with_next(app(2, 1, Complete), 5),
            vec![inst(9, 1, "ready")],
            vec![10],
            11,
        ),
        (
            "even with nothing to start, next_ordinal catches up with what runs",
            with_next(app(1, 1, Complete), 5),
            vec![inst(9, 1, "ready")],
            vec![],
            10,
        ),
        (
            "terminating and exited containers keep their ordinals taken",
            with_next(app(2, 2, Complete), 3),
            vec![
                inst(1, 2, "ready"),
                inst(7, 2, "terminating"),
                old_exited(12),
            ],
            vec![13],
            14,
        ),
        (
            "a crash replacement and a scale-up take consecutive slots, replacement first",
            with_next(app(3, 1, Complete), 100),
            vec![inst(1, 1, "ready"), crashed(2, 1, 0, 60_000)],
            vec![100, 101],
            102,
        ),
        (
            "a rolling upgrade's surge takes the next slots",
            with_next(app(3, 2, Progressing), 4),
            vec![
                inst(1, 1, "ready"),
                inst(2, 1, "ready"),
                inst(3, 1, "ready"),
            ],
            vec![4],
            5,
        ),
    ];
    for (case, app, instances, ordinals, next) in cases {
        let p = run(&app, &instances);
        assert_eq!(start_ordinals(&p), ordinals, "{case}: {:?}", p.actions);
        assert_eq!(p.next_ordinal, next, "{case}");
    }
}

fn canary_app(started: Option<(Millis, bool)>) -> App {
    let mut app = app(3, 2, RolloutPhase::Progressing);
    app.strategy.canary = Some(crate::canary::Canary {
        weight_percent: 20,
        header: None,
        duration_ms: 60_000,
    });
    app.rollout.canary = started.map(|(started_at, passed)| CanaryProgress { started_at, passed });
    app
}

fn traffic(since: Millis, stable: (u64, u64), canary: (u64, u64)) -> CanaryTraffic {
    let count = |(requests, errors)| crate::canary::TrafficCount { requests, errors };
    CanaryTraffic {
        since,
        stable: count(stable),
        canary: count(canary),
    }
}

fn run_canary(app: &App, instances: &[ObservedInstance], traffic: Option<&CanaryTraffic>) -> Plan {
    plan(&PlanInput {
        app,
        instances,
        start_failure: None,
        backoff: Backoff::default(),
        now: NOW,
        canary_traffic: traffic,
    })
}

#[test]
fn a_canary_runs_one_instance_beside_every_old_one_until_its_verdict() {
    let old = || {
        vec![
            inst(1, 1, "ready"),
            inst(2, 1, "ready"),
            inst(3, 1, "ready"),
        ]
    };
    let with = |mut instances: Vec<ObservedInstance>, extra: ObservedInstance| {
        instances.push(extra);
        instances
    };
    let good = traffic(0, (1000, 0), (200, 0));
    let bad = traffic(0, (1000, 0), (200, 50));
    // (what, app, instances, traffic, actions, rollout update)
    type Case = (
        &'static str,
        App,
        Vec<ObservedInstance>,
        Option<CanaryTraffic>,
        Vec<&'static str>,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "the canary instance starts; no old one stops",
            canary_app(None),
            old(),
            None,
            vec!["+r2"],
            None,
        ),
        (
            "while it starts, nothing else happens",
            canary_app(None),
            with(old(), inst(4, 2, "starting")),
            None,
            vec![],
            None,
        ),
        (
            "once it is available, the canary starts",
            canary_app(None),
            with(old(), inst(4, 2, "ready")),
            None,
            vec![],
            Some("canary_started"),
        ),
        (
            "an old instance that is not ready stays while the canary is judged",
            canary_app(Some((NOW - 1_000, false))),
            vec![
                inst(1, 1, "notready"),
                inst(2, 1, "ready"),
                inst(3, 1, "ready"),
                inst(4, 2, "ready"),
            ],
            Some(good),
            vec![],
            None,
        ),
        (
            "within the window nothing moves, whatever the traffic",
            canary_app(Some((NOW - 59_999, false))),
            with(old(), inst(4, 2, "ready")),
            Some(bad),
            vec![],
            None,
        ),
        (
            "counting that started late (a restart) extends the window",
            canary_app(Some((NOW - 120_000, false))),
            with(old(), inst(4, 2, "ready")),
            Some(traffic(NOW - 30_000, (10, 0), (10, 0))),
            vec![],
            None,
        ),
        (
            "after the window, a good canary passes",
            canary_app(Some((NOW - 60_000, false))),
            with(old(), inst(4, 2, "ready")),
            Some(good),
            vec![],
            Some("canary_passed"),
        ),
        (
            "after the window, a worse canary fails the rollout",
            canary_app(Some((NOW - 60_000, false))),
            with(old(), inst(4, 2, "ready")),
            Some(bad),
            vec![],
            Some("failed"),
        ),
        (
            "without a router the canary passes on its health checks",
            canary_app(Some((NOW - 60_000, false))),
            with(old(), inst(4, 2, "ready")),
            None,
            vec![],
            Some("canary_passed"),
        ),
        (
            "once passed, the rollout goes on as a rolling upgrade",
            canary_app(Some((NOW - 60_000, true))),
            with(old(), inst(4, 2, "ready")),
            None,
            vec!["-web-3"],
            Some("progress"),
        ),
        (
            "a first rollout has no canary",
            {
                let mut app = canary_app(None);
                app.stable_revision = None;
                app
            },
            vec![],
            None,
            vec!["+r2", "+r2", "+r2"],
            None,
        ),
        (
            "a rollback has no canary",
            {
                let mut app = canary_app(None);
                app.rollout.phase = RolloutPhase::RollingBack;
                app
            },
            with(old(), inst(4, 2, "ready")),
            None,
            vec!["-web-3"],
            Some("progress"),
        ),
    ];
    for (what, app, instances, traffic, actions, update) in cases {
        let p = run_canary(&app, &instances, traffic.as_ref());
        assert_eq!(summary(&p), actions, "{what}");
        let got = p.rollout.as_ref().map(|u| match u {
            RolloutUpdate::Progress { .. } => "progress",
            RolloutUpdate::Complete => "complete",
            RolloutUpdate::Failed { .. } => "failed",
            RolloutUpdate::CanaryStarted => "canary_started",
            RolloutUpdate::CanaryPassed { .. } => "canary_passed",
        });
        assert_eq!(got, update, "{what}: {:?}", p.rollout);
    }
}

#[test]
fn the_canary_window_wakes_the_planner_and_no_progress_deadline_runs_meanwhile() {
    let mut app = canary_app(Some((NOW - 10_000, false)));
    app.strategy.progress_deadline_ms = 1_000;
    app.rollout.progress_at = NOW - 10_000;
    let instances = vec![
        inst(1, 1, "ready"),
        inst(2, 1, "ready"),
        inst(4, 2, "ready"),
    ];
    let p = run_canary(&app, &instances, None);
    assert_eq!(p.rollout, None);
    assert_eq!(p.requeue_after_ms, Some(50_000));
    // A canary instance that stops being ready: the deadline decides again.
    let instances = vec![
        inst(1, 1, "ready"),
        inst(2, 1, "ready"),
        inst(4, 2, "notready"),
    ];
    let p = run_canary(&app, &instances, None);
    assert!(
        matches!(p.rollout, Some(RolloutUpdate::Failed { .. })),
        "{:?}",
        p.rollout
    );
}

#[test]
fn canary_transitions_record_their_progress_and_say_why() {
    let mut app = canary_app(None);
    let events = advance_rollout(&mut app, &RolloutUpdate::CanaryStarted, NOW);
    assert_eq!(
        app.rollout.canary,
        Some(CanaryProgress {
            started_at: NOW,
            passed: false
        })
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::CanaryStarted);
    assert_eq!(
        events[0].message,
        "canary of revision 2 takes 20 % of requests for 60 s; the rest stays on revision 1"
    );
    let events = advance_rollout(
        &mut app,
        &RolloutUpdate::CanaryPassed {
            message: "canary passed: fine".into(),
        },
        NOW + 60_000,
    );
    assert!(app.rollout.canary.is_some_and(|c| c.passed));
    assert_eq!(events[0].kind, EventKind::CanaryPassed);
    assert_eq!(app.rollout.phase, RolloutPhase::Progressing);
    // A failed verdict rolls back like any failed rollout.
    let mut app = canary_app(Some((NOW, false)));
    let events = advance_rollout(
        &mut app,
        &RolloutUpdate::Failed {
            reason: "canary failed: worse".into(),
        },
        NOW,
    );
    assert_eq!(app.rollout.phase, RolloutPhase::RollingBack);
    assert_eq!(app.current_revision, 1);
    assert_eq!(events[1].kind, EventKind::RollbackStarted);
}

#[test]
fn a_recreate_rollout_stops_every_old_instance_before_the_new_revision_starts() {
    let mut recreate = app(3, 2, RolloutPhase::Progressing);
    recreate.strategy.kind = crate::spec::RolloutKind::Recreate;
    // (instances, expected actions)
    let cases: Vec<(Vec<ObservedInstance>, Vec<&str>)> = vec![
        // Every old one stops at once, whatever the budget; nothing new starts.
        (
            vec![
                inst(1, 1, "ready"),
                inst(2, 1, "ready"),
                inst(3, 1, "unhealthy"),
            ],
            vec!["-web-1", "-web-2", "-web-3"],
        ),
        // One still stopping: wait.
        (vec![inst(1, 1, "terminating")], vec![]),
        // One still starting of the old revision: it stops too.
        (vec![inst(1, 1, "starting")], vec!["-web-1"]),
        // An exited old one is only cleaned up: the new revision starts beside it.
        (
            vec![inst(1, 1, "killed")],
            vec!["+r2", "+r2", "+r2", "-web-1"],
        ),
        // None left: the new revision starts, all three at once.
        (vec![], vec!["+r2", "+r2", "+r2"]),
        // Once the new revision runs, it is a plain app again (a scale up is not held).
        (
            vec![inst(4, 2, "ready"), inst(5, 2, "starting")],
            vec!["+r2"],
        ),
    ];
    for (instances, want) in cases {
        let plan = run(&recreate, &instances);
        assert_eq!(summary(&plan), want, "{instances:?}");
    }
    // While it waits, the planner looks again soon.
    let plan = run(&recreate, &[inst(1, 1, "terminating")]);
    assert_eq!(plan.requeue_after_ms, Some(RECREATE_RECHECK_MS as u64));
    // The same instances under the default rolling strategy: the old ones keep serving.
    let rolling = app(3, 2, RolloutPhase::Progressing);
    let plan = run(
        &rolling,
        &[
            inst(1, 1, "ready"),
            inst(2, 1, "ready"),
            inst(3, 1, "ready"),
        ],
    );
    assert_eq!(summary(&plan), ["+r2"]);
}

#[test]
fn a_drained_nodes_instances_are_replaced_before_they_stop() {
    use RolloutPhase::*;
    let evicted = |ordinal: u64, state: &str| ObservedInstance {
        evicted: true,
        ..inst(ordinal, 1, state)
    };
    // (case, instances — 3 replicas, surge 1, unavailable 0 —, the plan)
    let cases: Vec<(&str, Vec<ObservedInstance>, Vec<&str>)> = vec![
        (
            "a replacement starts first; nothing stops",
            vec![
                inst(1, 1, "ready"),
                evicted(2, "ready"),
                evicted(3, "ready"),
            ],
            vec!["+r1"],
        ),
        (
            "while it starts, nothing more happens",
            vec![
                inst(1, 1, "ready"),
                evicted(2, "ready"),
                evicted(3, "ready"),
                inst(4, 1, "starting"),
            ],
            vec![],
        ),
        (
            "once it is ready, one evicted instance stops (the next replacement follows)",
            vec![
                inst(1, 1, "ready"),
                evicted(2, "ready"),
                evicted(3, "ready"),
                inst(4, 1, "ready"),
            ],
            vec!["-web-3"],
        ),
        (
            "an evicted instance that does not serve stops at once",
            vec![
                inst(1, 1, "ready"),
                inst(4, 1, "ready"),
                evicted(3, "notready"),
            ],
            vec!["+r1", "-web-3"],
        ),
        (
            "none evicted: nothing to do",
            vec![
                inst(1, 1, "ready"),
                inst(4, 1, "ready"),
                inst(5, 1, "ready"),
            ],
            vec![],
        ),
    ];
    for (name, instances, want) in cases {
        let plan = run(&app(3, 1, Complete), &instances);
        assert_eq!(summary(&plan), want, "{name}");
        for action in &plan.actions {
            match action {
                Action::Start { cause, .. } => {
                    assert_eq!(*cause, StartCause::NodeDrain, "{name}")
                }
                Action::Stop { cause, .. } => {
                    assert_eq!(*cause, StopCause::NodeDrained, "{name}")
                }
            }
        }
    }
}
