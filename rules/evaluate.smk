# Cross-validated evaluation: one job per (experiment, model, task, fold, seed), or with
# evaluate.batch_folds one job per (experiment, model, task, seed) running every test fold in one
# process; then one table. Fine-tuning jobs, the long ones, start before the baselines (priority).
EVAL_OUT = f"{RESULTS}/evaluation/{{experiment}}/{{model}}/{{task}}"
MCSP_MODELS_RE = "|".join(MCSP_MODEL_NAMES)
BASELINES_RE = "fc_logreg|fc_svm|bandpower_logreg|eegnet|brainnetcnn"


if EVALUATE["batch_folds"]:
    EVAL_FOLDS = evaluation_folds()

    rule finetune_folds:
        input:
            unpack(finetune_input),
        output:
            [f"{EVAL_OUT}/fold-{fold}_seed-{{seed}}_metrics.tsv" for fold in EVAL_FOLDS],
        log:
            f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/seed-{{seed}}.log",
        wildcard_constraints:
            model=MCSP_MODELS_RE,
            seed=r"\d+",
        priority: 1
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(120),
            gpu=1 if CONFIG["use_gpu"] else 0,
        params:
            config=evaluation_job_settings,
            plan=evaluation_job_plan,
        script:
            "../workflow/scripts/evaluate_job.py"

    rule baseline_folds:
        input:
            summary=f"{RESULTS}/store/store.json",
            samples=f"{RESULTS}/store/samples.h5",
        output:
            [f"{EVAL_OUT}/fold-{fold}_seed-{{seed}}_metrics.tsv" for fold in EVAL_FOLDS],
        log:
            f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/seed-{{seed}}.log",
        wildcard_constraints:
            model=BASELINES_RE,
            seed=r"\d+",
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            config=evaluation_job_settings,
            plan=evaluation_job_plan,
        script:
            "../workflow/scripts/evaluate_job.py"

else:

    rule finetune:
        input:
            unpack(finetune_input),
        output:
            f"{EVAL_OUT}/fold-{{fold}}_seed-{{seed}}_metrics.tsv",
        log:
            f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}.log",
        wildcard_constraints:
            model=MCSP_MODELS_RE,
            fold=r"\d+",
            seed=r"\d+",
        priority: 1
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(120),
            gpu=1 if CONFIG["use_gpu"] else 0,
        params:
            config=evaluation_job_settings,
            plan=evaluation_job_plan,
        script:
            "../workflow/scripts/evaluate_job.py"

    rule baseline:
        input:
            summary=f"{RESULTS}/store/store.json",
            samples=f"{RESULTS}/store/samples.h5",
        output:
            f"{EVAL_OUT}/fold-{{fold}}_seed-{{seed}}_metrics.tsv",
        log:
            f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}.log",
        wildcard_constraints:
            model=BASELINES_RE,
            fold=r"\d+",
            seed=r"\d+",
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: 1
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            config=evaluation_job_settings,
            plan=evaluation_job_plan,
        script:
            "../workflow/scripts/evaluate_job.py"


rule metrics:
    input:
        evaluation_jobs(),
    output:
        metrics=f"{RESULTS}/evaluation/metrics.tsv",
        summary=report(
            f"{RESULTS}/evaluation/summary.tsv",
            caption="../workflow/report/summary.rst",
            category="Evaluation",
        ),
        paired=report(
            f"{RESULTS}/evaluation/paired.tsv",
            caption="../workflow/report/paired.rst",
            category="Evaluation",
        ),
    log:
        f"{RESULTS}/logs/metrics.log",
    conda:
        "../workflow/envs/mcsp.yaml"
    params:
        evaluate=EVALUATE,
    script:
        "../workflow/scripts/metrics.py"
