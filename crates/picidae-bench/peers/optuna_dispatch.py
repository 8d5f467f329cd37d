# bench dispatch's peer: an Optuna study on one SQLite RDB storage whose objective runs the
# same subprocess as Picidae's runs; prints JSON with its trials, wall time and run time.
# Usage: optuna_dispatch.py N_TRIALS DB_PATH OBJECTIVE_SHELL_COMMAND [WORKERS]
# With WORKERS > 1, that many processes share the study (Optuna's way of running trials in
# parallel), each running its share of the trials; the wall time is the slowest one's.
import json, os, subprocess, sys, time
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
n, db, objective = int(sys.argv[1]), sys.argv[2], sys.argv[3]
workers = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "worker" else 1
storage = "sqlite:///" + db
run_secs = []
def f(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    t = time.perf_counter()
    out = subprocess.run(["/bin/sh", "-c", objective], env={**os.environ, "X": repr(x)},
                         capture_output=True, text=True, check=True).stdout
    run_secs.append(time.perf_counter() - t)
    return float(out.split("loss:")[1])
if sys.argv[-1] == "worker":
    study = optuna.load_study(study_name="dispatch", storage=storage,
                              sampler=optuna.samplers.RandomSampler())
    study.optimize(f, n_trials=n)
    print(json.dumps({"run_secs": sum(run_secs)}))
    sys.exit(0)
study = optuna.create_study(study_name="dispatch", storage=storage,
                            sampler=optuna.samplers.RandomSampler(seed=1))
t = time.perf_counter()
if workers == 1:
    study.optimize(f, n_trials=n)
    total_run = sum(run_secs)
else:
    shares = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
    procs = [subprocess.Popen([sys.executable, __file__, str(k), db, objective, "worker"],
                              stdout=subprocess.PIPE, text=True) for k in shares]
    total_run = 0.0
    for p in procs:
        out, _ = p.communicate()
        if p.returncode != 0:
            sys.exit(p.returncode)
        total_run += json.loads(out.strip().splitlines()[-1])["run_secs"]
wall = time.perf_counter() - t
trials = len(study.get_trials(deepcopy=False))
print(json.dumps({"trials": trials, "wall": wall, "run_secs": total_run,
                  "best": study.best_value, "version": optuna.__version__}))
