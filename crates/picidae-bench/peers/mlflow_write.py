# Logs `n` runs of `k` metric points through `MlflowClient`; prints JSON with the seconds.
import json, sys, time
import mlflow
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric, Param

base, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=base)
exp = client.create_experiment("bench-store")

def attempt(i):
    run = client.create_run(exp, tags={"hypothesis": f"attempt {i}: lr {i % 97} and width {i % 13}"})
    ts = int(time.time() * 1000)
    client.log_batch(run.info.run_id,
                     metrics=[Metric(f"m{j}", float(i * k + j), ts, 0) for j in range(k)],
                     params=[Param("lr", str(i % 97)), Param("width", str(i % 13))])
    client.set_terminated(run.info.run_id, "FINISHED")

attempt(-1)  # one untimed, so connection set-up is not counted
t0 = time.perf_counter()
for i in range(n):
    attempt(i)
secs = time.perf_counter() - t0
print(json.dumps({"version": mlflow.__version__, "secs": secs}))
