# bench dispatch's peer: an Optuna study on one SQLite RDB storage whose objective runs the
# same subprocess as Picidae's runs; prints JSON with its trials, wall time and run time.
# Usage: optuna_dispatch.py N_TRIALS DB_PATH OBJECTIVE_SHELL_COMMAND
import json, os, subprocess, sys, time
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
n, db, objective = int(sys.argv[1]), sys.argv[2], sys.argv[3]
run_secs = []
def f(trial):
    x = trial.suggest_float("x", -1.0, 1.0)
    t = time.perf_counter()
    out = subprocess.run(["/bin/sh", "-c", objective], env={**os.environ, "X": repr(x)},
                         capture_output=True, text=True, check=True).stdout
    run_secs.append(time.perf_counter() - t)
    return float(out.split("loss:")[1])
study = optuna.create_study(storage="sqlite:///" + db, sampler=optuna.samplers.RandomSampler(seed=1))
t = time.perf_counter()
study.optimize(f, n_trials=n)
wall = time.perf_counter() - t
print(json.dumps({"trials": len(study.trials), "wall": wall, "run_secs": sum(run_secs),
                  "best": study.best_value, "version": optuna.__version__}))
