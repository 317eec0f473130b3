//! A build's lifecycle as a pure state machine: queued → fetching → building → testing →
//! pushing → deploying → succeeded, or failed / cancelled / timed out / interrupted, with each
//! step's status and times.
//!
//! Steps run strictly in order; a step is either run or skipped. Every transition takes `now`
//! (unix ms) from the caller and refuses what the lifecycle does not allow, so a stored build
//! can be replayed and checked. Once a build has ended nothing changes it any more — which is
//! what keeps a build that a restart marked `interrupted` from being finished twice.

use std::fmt;

/// Build and step statuses are the domain's own (stored and shown as they are here).
pub use berth_core::pipeline::{BuildStatus, StepStatus};

/// One step of a build, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Fetch,
    Build,
    Test,
    Push,
    Deploy,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] = [
        Step::Fetch,
        Step::Build,
        Step::Test,
        Step::Push,
        Step::Deploy,
    ];

    /// The stable lowercase name (`fetch`, `build`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Fetch => "fetch",
            Step::Build => "build",
            Step::Test => "test",
            Step::Push => "push",
            Step::Deploy => "deploy",
        }
    }

    /// The build's status while this step runs.
    pub fn running_status(self) -> BuildStatus {
        match self {
            Step::Fetch => BuildStatus::Fetching,
            Step::Build => BuildStatus::Building,
            Step::Test => BuildStatus::Testing,
            Step::Push => BuildStatus::Pushing,
            Step::Deploy => BuildStatus::Deploying,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a build that has not succeeded ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ending {
    Failed,
    Cancelled,
    TimedOut,
    Interrupted,
}

impl Ending {
    fn build_status(self) -> BuildStatus {
        match self {
            Ending::Failed => BuildStatus::Failed,
            Ending::Cancelled => BuildStatus::Cancelled,
            Ending::TimedOut => BuildStatus::TimedOut,
            Ending::Interrupted => BuildStatus::Interrupted,
        }
    }

    fn step_status(self) -> StepStatus {
        match self {
            Ending::Failed => StepStatus::Failed,
            Ending::Cancelled => StepStatus::Cancelled,
            Ending::TimedOut => StepStatus::TimedOut,
            Ending::Interrupted => StepStatus::Interrupted,
        }
    }
}

/// One step's status and times (unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRecord {
    pub step: Step,
    pub status: StepStatus,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

impl StepRecord {
    /// How long the step ran, once it has finished (never negative, even if clocks jump).
    pub fn duration_ms(&self) -> Option<i64> {
        elapsed(self.started_at_ms, self.finished_at_ms)
    }
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the build has already ended ({0})")]
    Ended(BuildStatus),
    #[error("step {step} cannot start now: the next step is {next}")]
    OutOfOrder { step: Step, next: String },
    #[error("step {0} is not running")]
    NotRunning(Step),
    #[error("the build cannot succeed while step {0} has not run")]
    Unfinished(Step),
}

/// A build's status, steps and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildState {
    pub status: BuildStatus,
    /// One record per [`Step::ALL`], in order.
    pub steps: Vec<StepRecord>,
    pub queued_at_ms: i64,
    /// When the first step started.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Why the build did not succeed: a sentence naming the cause.
    pub reason: Option<String>,
}

impl BuildState {
    /// A build waiting for a worker.
    pub fn queued(now: i64) -> Self {
        Self {
            status: BuildStatus::Queued,
            steps: Step::ALL
                .iter()
                .map(|&step| StepRecord {
                    step,
                    status: StepStatus::Pending,
                    started_at_ms: None,
                    finished_at_ms: None,
                })
                .collect(),
            queued_at_ms: now,
            started_at_ms: None,
            finished_at_ms: None,
            reason: None,
        }
    }

    /// The record of `step`.
    pub fn step(&self, step: Step) -> &StepRecord {
        &self.steps[step.index()]
    }

    /// The step running now, if any.
    pub fn running_step(&self) -> Option<Step> {
        self.steps
            .iter()
            .find(|r| r.status == StepStatus::Running)
            .map(|r| r.step)
    }

    /// The first step that has not run yet, if any.
    fn next_pending(&self) -> Option<Step> {
        self.steps
            .iter()
            .find(|r| r.status == StepStatus::Pending)
            .map(|r| r.step)
    }

    /// How long the build ran, once it has ended.
    pub fn duration_ms(&self) -> Option<i64> {
        elapsed(self.started_at_ms, self.finished_at_ms)
    }

    fn check_open(&self) -> Result<(), TransitionError> {
        if self.status.is_terminal() {
            return Err(TransitionError::Ended(self.status));
        }
        Ok(())
    }

    /// Checks that `step` is the next one to run and nothing runs now.
    fn check_next(&self, step: Step) -> Result<(), TransitionError> {
        self.check_open()?;
        let next = match (self.running_step(), self.next_pending()) {
            (Some(running), _) => format!("{running} (still running)"),
            (None, Some(next)) if next == step => return Ok(()),
            (None, Some(next)) => next.to_string(),
            (None, None) => "none (all have run)".to_owned(),
        };
        Err(TransitionError::OutOfOrder { step, next })
    }

    /// Starts `step`, which must be the next one.
    pub fn start_step(&mut self, step: Step, now: i64) -> Result<(), TransitionError> {
        self.check_next(step)?;
        let record = &mut self.steps[step.index()];
        record.status = StepStatus::Running;
        record.started_at_ms = Some(now);
        self.started_at_ms.get_or_insert(now);
        self.status = step.running_status();
        Ok(())
    }

    /// Marks the running `step` succeeded.
    pub fn finish_step(&mut self, step: Step, now: i64) -> Result<(), TransitionError> {
        self.check_open()?;
        let record = &mut self.steps[step.index()];
        if record.status != StepStatus::Running {
            return Err(TransitionError::NotRunning(step));
        }
        record.status = StepStatus::Succeeded;
        record.finished_at_ms = Some(now);
        Ok(())
    }

    /// Skips `step` (not configured), which must be the next one.
    pub fn skip_step(&mut self, step: Step) -> Result<(), TransitionError> {
        self.check_next(step)?;
        self.steps[step.index()].status = StepStatus::Skipped;
        Ok(())
    }

    /// Ends the build successfully; every step must have run or been skipped.
    pub fn succeed(&mut self, now: i64) -> Result<(), TransitionError> {
        self.check_open()?;
        if let Some(step) = self.running_step().or_else(|| self.next_pending()) {
            return Err(TransitionError::Unfinished(step));
        }
        self.status = BuildStatus::Succeeded;
        self.finished_at_ms = Some(now);
        Ok(())
    }

    /// Ends the build without success: the running step takes the ending's status, steps not
    /// run are skipped, and `reason` says why.
    pub fn end(
        &mut self,
        ending: Ending,
        reason: impl Into<String>,
        now: i64,
    ) -> Result<(), TransitionError> {
        self.check_open()?;
        for record in &mut self.steps {
            match record.status {
                StepStatus::Running => {
                    record.status = ending.step_status();
                    record.finished_at_ms = Some(now);
                }
                StepStatus::Pending => record.status = StepStatus::Skipped,
                _ => {}
            }
        }
        self.status = ending.build_status();
        self.finished_at_ms = Some(now);
        self.reason = Some(reason.into());
        Ok(())
    }
}

fn elapsed(start: Option<i64>, end: Option<i64>) -> Option<i64> {
    Some(end?.saturating_sub(start?).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One transition of a table-driven run.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Start(Step),
        Finish(Step),
        Skip(Step),
        Succeed,
        End(Ending),
    }

    fn apply(state: &mut BuildState, op: Op, now: i64) -> Result<(), TransitionError> {
        match op {
            Op::Start(s) => state.start_step(s, now),
            Op::Finish(s) => state.finish_step(s, now),
            Op::Skip(s) => state.skip_step(s),
            Op::Succeed => state.succeed(now),
            Op::End(e) => state.end(e, "because", now),
        }
    }

    use Op::*;
    use Step::*;

    fn full_run() -> Vec<Op> {
        vec![
            Start(Fetch),
            Finish(Fetch),
            Start(Build),
            Finish(Build),
            Start(Test),
            Finish(Test),
            Start(Push),
            Finish(Push),
            Start(Deploy),
            Finish(Deploy),
            Succeed,
        ]
    }

    #[test]
    fn lifecycles() {
        use StepStatus as S;
        struct Case {
            name: &'static str,
            ops: Vec<Op>,
            status: BuildStatus,
            steps: [StepStatus; 5],
        }
        let cases = vec![
            Case {
                name: "everything runs",
                ops: full_run(),
                status: BuildStatus::Succeeded,
                steps: [S::Succeeded; 5],
            },
            Case {
                name: "no tests, no deploy",
                ops: vec![
                    Start(Fetch),
                    Finish(Fetch),
                    Start(Build),
                    Finish(Build),
                    Skip(Test),
                    Start(Push),
                    Finish(Push),
                    Skip(Deploy),
                    Succeed,
                ],
                status: BuildStatus::Succeeded,
                steps: [
                    S::Succeeded,
                    S::Succeeded,
                    S::Skipped,
                    S::Succeeded,
                    S::Skipped,
                ],
            },
            Case {
                name: "a failing test stops before the push",
                ops: vec![
                    Start(Fetch),
                    Finish(Fetch),
                    Start(Build),
                    Finish(Build),
                    Start(Test),
                    End(Ending::Failed),
                ],
                status: BuildStatus::Failed,
                steps: [
                    S::Succeeded,
                    S::Succeeded,
                    S::Failed,
                    S::Skipped,
                    S::Skipped,
                ],
            },
            Case {
                name: "cancelled while building",
                ops: vec![
                    Start(Fetch),
                    Finish(Fetch),
                    Start(Build),
                    End(Ending::Cancelled),
                ],
                status: BuildStatus::Cancelled,
                steps: [
                    S::Succeeded,
                    S::Cancelled,
                    S::Skipped,
                    S::Skipped,
                    S::Skipped,
                ],
            },
            Case {
                name: "timed out while fetching",
                ops: vec![Start(Fetch), End(Ending::TimedOut)],
                status: BuildStatus::TimedOut,
                steps: [S::TimedOut, S::Skipped, S::Skipped, S::Skipped, S::Skipped],
            },
            Case {
                name: "interrupted while pushing",
                ops: vec![
                    Start(Fetch),
                    Finish(Fetch),
                    Start(Build),
                    Finish(Build),
                    Skip(Test),
                    Start(Push),
                    End(Ending::Interrupted),
                ],
                status: BuildStatus::Interrupted,
                steps: [
                    S::Succeeded,
                    S::Succeeded,
                    S::Skipped,
                    S::Interrupted,
                    S::Skipped,
                ],
            },
            Case {
                name: "cancelled while queued",
                ops: vec![End(Ending::Cancelled)],
                status: BuildStatus::Cancelled,
                steps: [S::Skipped; 5],
            },
            Case {
                name: "failed between steps",
                ops: vec![Start(Fetch), Finish(Fetch), End(Ending::Failed)],
                status: BuildStatus::Failed,
                steps: [S::Succeeded, S::Skipped, S::Skipped, S::Skipped, S::Skipped],
            },
        ];
        for case in cases {
            let mut state = BuildState::queued(1_000);
            for (i, op) in case.ops.iter().enumerate() {
                apply(&mut state, *op, 2_000 + i as i64 * 10)
                    .unwrap_or_else(|e| panic!("{}: {op:?}: {e}", case.name));
            }
            assert_eq!(state.status, case.status, "{}", case.name);
            let got: Vec<StepStatus> = state.steps.iter().map(|r| r.status).collect();
            assert_eq!(got, case.steps, "{}", case.name);
            assert!(state.status.is_terminal(), "{}", case.name);
            assert!(state.finished_at_ms.is_some(), "{}", case.name);
            assert_eq!(state.running_step(), None, "{}", case.name);
            assert_eq!(
                state.reason.is_some(),
                state.status != BuildStatus::Succeeded,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn refuses_what_the_lifecycle_does_not_allow() {
        let ended = || {
            let mut s = BuildState::queued(0);
            s.end(Ending::Cancelled, "x", 1).unwrap();
            s
        };
        let fetching = || {
            let mut s = BuildState::queued(0);
            s.start_step(Fetch, 1).unwrap();
            s
        };
        let cases: Vec<(&str, BuildState, Op, TransitionError)> = vec![
            (
                "a step out of order",
                BuildState::queued(0),
                Start(Build),
                TransitionError::OutOfOrder {
                    step: Build,
                    next: "fetch".into(),
                },
            ),
            (
                "a step while another runs",
                fetching(),
                Start(Build),
                TransitionError::OutOfOrder {
                    step: Build,
                    next: "fetch (still running)".into(),
                },
            ),
            (
                "the same step twice",
                fetching(),
                Start(Fetch),
                TransitionError::OutOfOrder {
                    step: Fetch,
                    next: "fetch (still running)".into(),
                },
            ),
            (
                "finishing a step that does not run",
                fetching(),
                Finish(Build),
                TransitionError::NotRunning(Build),
            ),
            (
                "skipping the running step",
                fetching(),
                Skip(Fetch),
                TransitionError::OutOfOrder {
                    step: Fetch,
                    next: "fetch (still running)".into(),
                },
            ),
            (
                "succeeding early",
                fetching(),
                Succeed,
                TransitionError::Unfinished(Fetch),
            ),
            (
                "succeeding before anything ran",
                BuildState::queued(0),
                Succeed,
                TransitionError::Unfinished(Fetch),
            ),
            (
                "anything after the end",
                ended(),
                Start(Fetch),
                TransitionError::Ended(BuildStatus::Cancelled),
            ),
            (
                "ending twice",
                ended(),
                End(Ending::Interrupted),
                TransitionError::Ended(BuildStatus::Cancelled),
            ),
        ];
        for (name, mut state, op, want) in cases {
            let before = state.clone();
            assert_eq!(apply(&mut state, op, 99), Err(want), "{name}");
            assert_eq!(
                state, before,
                "{name}: a refused transition changed the state"
            );
        }
        let mut done = BuildState::queued(0);
        for (i, op) in full_run().into_iter().enumerate() {
            apply(&mut done, op, i as i64).unwrap();
        }
        assert_eq!(
            done.start_step(Fetch, 100),
            Err(TransitionError::Ended(BuildStatus::Succeeded))
        );
    }

    #[test]
    fn times_and_durations() {
        let mut s = BuildState::queued(1_000);
        assert_eq!(s.status, BuildStatus::Queued);
        s.start_step(Fetch, 1_500).unwrap();
        assert_eq!(s.status, BuildStatus::Fetching);
        assert_eq!(s.started_at_ms, Some(1_500));
        assert_eq!(s.step(Fetch).duration_ms(), None);
        s.finish_step(Fetch, 1_800).unwrap();
        assert_eq!(s.step(Fetch).duration_ms(), Some(300));
        s.start_step(Build, 1_800).unwrap();
        assert_eq!(s.status, BuildStatus::Building);
        // A clock that jumps back never gives a negative duration.
        s.end(Ending::Failed, "build failed", 1_700).unwrap();
        assert_eq!(s.step(Build).duration_ms(), Some(0));
        assert_eq!(s.duration_ms(), Some(200));
        assert_eq!(s.reason.as_deref(), Some("build failed"));
        assert_eq!(s.step(Test).started_at_ms, None);
    }

    #[test]
    fn names_round_trip() {
        for status in BuildStatus::ALL {
            assert_eq!(BuildStatus::parse(status.as_str()), Some(status));
        }
        for status in StepStatus::ALL {
            assert_eq!(StepStatus::parse(status.as_str()), Some(status));
        }
        let terminal: Vec<&str> = BuildStatus::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            terminal,
            [
                "succeeded",
                "failed",
                "cancelled",
                "interrupted",
                "timed_out"
            ]
        );
        assert_eq!(BuildStatus::parse("running"), None);
        let steps: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(steps, ["fetch", "build", "test", "push", "deploy"]);
    }
}
