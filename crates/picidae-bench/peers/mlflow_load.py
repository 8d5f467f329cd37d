# Loads a Picidae store's programs and attempts into a fresh MLflow SQLite database: one
# experiment per program, one run per attempt. Bulk INSERTs through MLflow's own SQLAlchemy
# tables, after its `SqlAlchemyStore` has created the schema and the experiments; runs are
# committed 10,000 at a time. Prints the MLflow version, the runs, the experiments and the
# seconds it took, as JSON.
import json, sqlite3, sys, time, uuid
from sqlalchemy import insert
import mlflow
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag)

source, db, artifacts, metric = sys.argv[1:5]
STATUS = {"kept": "FINISHED", "discarded": "FINISHED", "failed": "FAILED",
          "rejected": "KILLED", "duplicate": "KILLED", "running": "RUNNING"}
t0 = time.perf_counter()
store = SqlAlchemyStore("sqlite:///" + db, artifacts)
src = sqlite3.connect(source)
experiments, n = {}, 0
for pid, name in src.execute("SELECT id, name FROM programs ORDER BY id").fetchall():
    exp = store.create_experiment(name)
    experiments[name] = exp
    cur = src.execute(
        "SELECT seq, kind, status, hypothesis, proposer, params_json, primary_value, commit_sha,"
        " created_at, decided_at FROM attempts WHERE program_id = ? ORDER BY seq", (pid,))
    while rows := cur.fetchmany(10000):
        runs, metrics, params, tags = [], [], [], []
        for seq, kind, status, hyp, proposer, params_json, value, commit, created, decided in rows:
            rid = uuid.uuid4().hex
            run_name = f"{name} #{seq}"
            runs.append(dict(run_uuid=rid, name=run_name, source_type="LOCAL", source_name="",
                             entry_point_name="", user_id=proposer,
                             status=STATUS.get(status, "SCHEDULED"), start_time=created,
                             end_time=decided, source_version="", lifecycle_stage="active",
                             artifact_uri=f"{artifacts}/{exp}/{rid}/artifacts",
                             experiment_id=int(exp)))
            if value is not None:
                metrics.append(dict(key=metric, value=value, timestamp=decided or created,
                                    step=0, is_nan=False, run_uuid=rid))
            for k, v in (json.loads(params_json) if params_json else {}).items():
                params.append(dict(key=k, value=v if isinstance(v, str) else json.dumps(v),
                                   run_uuid=rid))
            for k, v in (("mlflow.runName", run_name), ("mlflow.user", proposer),
                         ("hypothesis", hyp), ("picidae.seq", str(seq)),
                         ("picidae.status", status), ("picidae.kind", kind),
                         ("picidae.commit", commit or "")):
                tags.append(dict(key=k, value=v, run_uuid=rid))
        with store.ManagedSessionMaker() as session:
            session.execute(insert(SqlRun.__table__), runs)
            if metrics:
                session.execute(insert(SqlMetric.__table__), metrics)
                session.execute(insert(SqlLatestMetric.__table__), metrics)
            if params:
                session.execute(insert(SqlParam.__table__), params)
            session.execute(insert(SqlTag.__table__), tags)
        n += len(runs)
print(json.dumps({"version": mlflow.__version__, "runs": n, "experiments": experiments,
                  "secs": time.perf_counter() - t0}))
