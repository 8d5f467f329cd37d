//! What is watched live: Prometheus metrics and the Server-Sent Events stream.

use super::*;

/// Prometheus metrics: programs by status, attempts and runs by program and status, uptime,
/// and the coordinator's own lines (slots and the like).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format",
               content_type = "text/plain; version=0.0.4", body = String),
              (status = 500, body = ErrorBody)))]
pub(crate) async fn metrics(State(ctx): State<Shared>) -> Result<Response, ApiError> {
    let mut text = ctx.with_store(|store| Ok(store_metrics(store)?)).await?;
    let uptime = ctx.state.started.elapsed().as_secs_f64();
    text.push_str(
        "# HELP picidae_uptime_seconds Seconds since the server started.\n\
         # TYPE picidae_uptime_seconds gauge\n",
    );
    text.push_str(&format!("picidae_uptime_seconds {uptime:.3}\n"));
    let extra = (ctx.state.metrics)();
    if !extra.trim().is_empty() {
        text.push_str(&extra);
        if !extra.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// Escape a Prometheus label value.
pub(crate) fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn store_metrics(store: &Store) -> Result<String, StoreError> {
    let counts = store.status_counts()?;
    let mut out = String::new();
    out.push_str("# HELP picidae_programs Programs by status.\n# TYPE picidae_programs gauge\n");
    for (status, n) in &counts.programs {
        out.push_str(&format!(
            "picidae_programs{{status=\"{}\"}} {n}\n",
            label(status)
        ));
    }
    for (table, what, rows) in [
        ("attempts", "Attempts", &counts.attempts),
        ("runs", "Runs", &counts.runs),
    ] {
        out.push_str(&format!(
            "# HELP picidae_{table} {what} by program and status.\n\
             # TYPE picidae_{table} gauge\n"
        ));
        for c in rows {
            out.push_str(&format!(
                "picidae_{table}{{program=\"{}\",status=\"{}\"}} {}\n",
                label(&c.program),
                label(&c.status),
                c.n
            ));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ events

/// An SSE event for one change in the store.
pub(crate) fn change_event(change: Change) -> Event {
    let (kind, data) = match change {
        Change::Run(r) => ("run", serde_json::to_string(&r)),
        Change::Attempt(a) => ("attempt", serde_json::to_string(&a)),
    };
    Event::default()
        .event(kind)
        .data(data.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

pub(crate) struct EventStream {
    store: Option<Store>,
    watcher: Option<ChangeWatcher>,
    queue: VecDeque<Event>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
}

/// Live changes as Server-Sent Events: `run` for every new run and run status change, `attempt`
/// when an attempt is decided. Polls the store every 500 ms; keep-alive comments every 10 s.
#[utoipa::path(get, path = "/api/events", tag = "events",
    security((), ("bearer" = [])),
    responses((status = 200, description = "An event stream: `event: run` with data \
               {id, program, seq, seed, status, value}; `event: attempt` with data \
               {id, program, seq, status, value, decided_at}; `event: error` with data {error}",
               content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn events(
    State(ctx): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let permit = ctx.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open (at most {MAX_EVENT_STREAMS}); try again later"),
        )
    })?;
    // Authorise on a pooled connection, then give the stream a connection of its own.
    ctx.read(&headers, |_| Ok(())).await?;
    let state = ctx.state.clone();
    let (store, watcher) = tokio::task::spawn_blocking(move || {
        let store = state.open_store()?;
        let watcher = ChangeWatcher::start(&store)?;
        Ok::<_, StoreError>((store, watcher))
    })
    .await
    .map_err(|e| ApiError::internal(format!("event stream failed to start: {e}")))??;
    let state = EventStream {
        store: Some(store),
        watcher: Some(watcher),
        queue: VecDeque::new(),
        shutdown: ctx.shutdown.subscribe(),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok::<Event, Infallible>(ev), st));
            }
            tokio::select! {
                _ = tokio::time::sleep(EVENT_POLL) => {}
                _ = st.shutdown.wait_for(|down| *down) => return None,
            }
            let (store, mut watcher) = (st.store.take()?, st.watcher.take()?);
            let (store, watcher, polled) = tokio::task::spawn_blocking(move || {
                let r = watcher.poll(&store);
                (store, watcher, r)
            })
            .await
            .ok()?;
            st.store = Some(store);
            st.watcher = Some(watcher);
            match polled {
                Ok(changes) => st.queue.extend(changes.into_iter().map(change_event)),
                Err(e) => {
                    let data = serde_json::json!({ "error": e.to_string() });
                    st.queue
                        .push_back(Event::default().event("error").data(data.to_string()));
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response())
}
