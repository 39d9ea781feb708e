//! Running one planned task: create the container by image id, attach, start, stream its
//! output to the log file, wait for its exit with a timeout and Ctrl-C, and make sure the
//! container is gone afterwards whatever happened.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, EventsOptions, RemoveContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::log::LogSink;
use super::spec::container_body;
use super::{RunOutcome, RunSpec, docker_err, is_not_found};
use crate::mlcube::access;
use crate::mlcube::error::Error;
use crate::mlcube::plan::Plan;
use crate::progress::{Cancel, Reporter};

/// How long to wait for the Engine's auto-removal before removing the container ourselves.
const REMOVAL_GRACE: Duration = Duration::from_secs(10);

/// How often the display gets the last line once the log is truncated.
const LINE_EVERY: Duration = Duration::from_millis(200);

enum Ending {
    Exited,
    TimedOut,
    Cancelled,
}

pub async fn run(
    docker: &Docker,
    plan: &Plan,
    spec: &RunSpec,
    image_id: &str,
    run_id: &str,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> Result<RunOutcome, Error> {
    let mut sink = LogSink::create(&spec.log_path, spec.log_limit).map_err(|source| Error::Io {
        path: spec.log_path.clone(),
        source,
    })?;
    let name = container_name(&plan.task, run_id);
    let body = container_body(plan, image_id, run_id);
    // Immediately before the container exists: every mount is checked again (no link, inside
    // the run's folders) and the container's user gets what it needs, for this run only.
    let record = spec
        .access_records
        .as_deref()
        .map(|dir| access::Record { dir, run_id });
    let mut leftovers = Vec::new();
    let granted = access::grant(plan, record.as_ref(), &mut leftovers);
    // Containers of runs killed before they could remove them (found by their records).
    for run in &leftovers {
        remove_labelled(docker, run).await?;
    }
    let access = granted?;
    let created = match docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
    {
        Ok(c) => c,
        Err(e) => {
            access.revoke()?;
            return Err(docker_err(
                &format!("creating the container for task {}", plan.task),
                e,
            ));
        }
    };
    let id = created.id;
    let task = reporter.begin(&format!("{} {}", plan.cube, plan.task), None);
    let result = supervise(docker, plan, spec, &id, &mut sink, task, reporter, cancel).await;
    // Whatever happened, the container must not outlive the run. After a normal exit the
    // Engine's auto-removal is already under way; otherwise remove it now.
    let exited = matches!(&result, Ok((_, Some(_), _)));
    let cleanup = ensure_removed(docker, &id, exited).await;
    // Only once it is gone can nothing race the walk that takes access back.
    let revoked = if cleanup.is_ok() {
        access.revoke()
    } else {
        Ok(())
    };
    let ok = matches!(&result, Ok((Ending::Exited, Some(0), _)));
    reporter.end(task, ok);
    let truncated = sink.truncated();
    let log_path = sink.path().to_path_buf();
    let _ = sink.finish();
    let (ending, code, duration) = result?;
    cleanup?;
    revoked?;
    match ending {
        Ending::Cancelled => Err(Error::Cancelled {
            cube: plan.cube.clone(),
            task: plan.task.clone(),
        }),
        Ending::Exited | Ending::TimedOut => Ok(RunOutcome {
            cube: plan.cube.clone(),
            task: plan.task.clone(),
            exit_code: code.unwrap_or(-1),
            duration,
            timed_out: matches!(ending, Ending::TimedOut),
            timeout: plan.hardening.timeout,
            log_path,
            log_truncated: truncated,
            container_id: id,
            run_id: run_id.to_string(),
            image_id: image_id.to_string(),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    docker: &Docker,
    plan: &Plan,
    spec: &RunSpec,
    id: &str,
    sink: &mut LogSink,
    task: crate::progress::TaskId,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> Result<(Ending, Option<i64>, Duration), Error> {
    // Events are replayed from `since`, so the exit is seen even when the container dies
    // (and is auto-removed) before this subscription reaches the Engine.
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(300))
        .unwrap_or(0);
    let mut events = docker
        .events(Some(EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(HashMap::from([
                ("container".to_string(), vec![id.to_string()]),
                ("type".to_string(), vec!["container".to_string()]),
                (
                    "event".to_string(),
                    vec!["die".to_string(), "destroy".to_string()],
                ),
            ])),
        }))
        .boxed();
    let attached = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stream: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| docker_err("attaching to the container", e))?;
    let mut output = attached.output;
    docker
        .start_container(id, None)
        .await
        .map_err(|e| start_err(plan, e))?;
    let started = Instant::now();
    let deadline = plan
        .hardening
        .timeout
        .map(|t| tokio::time::Instant::now() + t);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut ending = Ending::Exited;
    let mut exit_code: Option<i64> = None;
    let mut duration = None;
    let mut output_done = false;
    let mut stopping = false;
    let mut last_line_at = Instant::now() - LINE_EVERY;
    let mut after_exit: Option<tokio::time::Instant> = None;
    let mut unreported: Option<String> = None;

    loop {
        if exit_code.is_some()
            && (output_done || after_exit.is_some_and(|t| tokio::time::Instant::now() >= t))
        {
            break;
        }
        tokio::select! {
            chunk = output.next(), if !output_done => match chunk {
                Some(Ok(out)) => {
                    let lines = sink.write(out.as_ref()).map_err(|source| Error::Io {
                        path: spec.log_path.clone(),
                        source,
                    })?;
                    if sink.truncated() {
                        // Past the cap only the latest line matters, a few times a second.
                        if let Some(line) = lines.last() {
                            if last_line_at.elapsed() >= LINE_EVERY {
                                reporter.line(task, line);
                                last_line_at = Instant::now();
                                unreported = None;
                            } else {
                                unreported = Some(line.clone());
                            }
                        }
                    } else {
                        for line in &lines {
                            reporter.line(task, line);
                        }
                    }
                }
                Some(Err(_)) | None => output_done = true,
            },
            event = events.next() => match event {
                Some(Ok(ev)) => match ev.action.as_deref() {
                    Some("die") => {
                        duration.get_or_insert(started.elapsed());
                        exit_code = ev
                            .actor
                            .and_then(|a| a.attributes)
                            .and_then(|attrs| attrs.get("exitCode").and_then(|c| c.parse().ok()))
                            .or(Some(-1));
                        after_exit = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                    }
                    Some("destroy") if exit_code.is_none() => {
                        return Err(Error::Docker {
                            action: format!("running task {}", plan.task),
                            message: "the container was removed before it exited".into(),
                        });
                    }
                    _ => {}
                },
                Some(Err(e)) => return Err(docker_err("following the container's events", e)),
                None => {
                    return Err(Error::Docker {
                        action: format!("running task {}", plan.task),
                        message: "the Engine closed the event stream".into(),
                    });
                }
            },
            _ = sleep_until(deadline), if !stopping && exit_code.is_none() => {
                ending = Ending::TimedOut;
                stopping = true;
                reporter.line(task, "timeout reached, stopping the container");
                stop(docker, id, spec.stop_grace).await;
            },
            _ = ticker.tick() => {
                if !stopping && exit_code.is_none() && cancel.is_cancelled() {
                    ending = Ending::Cancelled;
                    stopping = true;
                    reporter.line(task, "cancelled, stopping the container");
                    stop(docker, id, spec.stop_grace).await;
                }
            },
        }
    }
    if let Some(line) = sink.pending_line().or(unreported) {
        reporter.line(task, &line);
    }
    Ok((
        ending,
        exit_code,
        duration.unwrap_or_else(|| started.elapsed()),
    ))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn stop(docker: &Docker, id: &str, grace: Duration) {
    let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
    let _ = docker
        .stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(t),
                signal: None,
            }),
        )
        .await;
}

/// Removes every container carrying this run's label, running or not.
async fn remove_labelled(docker: &Docker, run_id: &str) -> Result<(), Error> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={run_id}", super::RUN_LABEL)],
    )]);
    let list = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| docker_err("listing containers", e))?;
    for id in list.into_iter().filter_map(|c| c.id) {
        ensure_removed(docker, &id, false).await?;
    }
    Ok(())
}

/// Waits (when `exited`) for the Engine's auto-removal, then removes the container by force
/// if it is still there. Succeeds once the container is gone.
pub async fn ensure_removed(docker: &Docker, id: &str, exited: bool) -> Result<(), Error> {
    let until = Instant::now()
        + if exited {
            REMOVAL_GRACE
        } else {
            Duration::ZERO
        };
    if exited {
        // The Engine answers this when its auto-remove is done, as `docker run --rm` waits;
        // polling alone added up to one poll interval (50 ms) to every task. Whatever it
        // answers (the container may already be gone), the checks below decide.
        let mut removed = docker
            .wait_container(
                id,
                Some(WaitContainerOptions {
                    condition: "removed".into(),
                }),
            )
            .boxed();
        let _ =
            tokio::time::timeout_at(tokio::time::Instant::from_std(until), removed.next()).await;
    }
    loop {
        match docker.inspect_container(id, None).await {
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(docker_err("checking the container was removed", e)),
            Ok(c) => {
                let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
                if running || Instant::now() >= until {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // "removal already in progress": the Engine's auto-remove is finishing.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(docker_err("removing the container", e)),
    }
}

fn start_err(plan: &Plan, e: bollard::errors::Error) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            message,
            status_code,
        } if status_code < 500 || message.contains("mount") => Error::Config {
            cube: plan.cube.clone(),
            message: format!(
                "task {}: the container could not start: {message}",
                plan.task
            ),
        },
        other => docker_err(&format!("starting task {}", plan.task), other),
    }
}

/// A readable container name: `cohort-<task>-<run id prefix>`.
pub fn container_name(task: &str, run_id: &str) -> String {
    let task: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let short: String = run_id.chars().take(12).collect();
    format!("cohort-{task}-{short}")
}
