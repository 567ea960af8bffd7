# Cross-validated evaluation: one job per (experiment, model, task, fold, seed), then one table.


rule finetune:
    input:
        unpack(finetune_input),
    output:
        f"{RESULTS}/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}_metrics.tsv",
    log:
        f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}.log",
    wildcard_constraints:
        model="|".join(MCSP_MODEL_NAMES),
        fold=r"\d+",
        seed=r"\d+",
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=1 if CONFIG["use_gpu"] else 0,
    params:
        config=evaluation_job_settings,
    script:
        "../workflow/scripts/evaluate_job.py"


rule baseline:
    input:
        summary=f"{RESULTS}/store/store.json",
        samples=f"{RESULTS}/store/samples.h5",
    output:
        f"{RESULTS}/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}_metrics.tsv",
    log:
        f"{RESULTS}/logs/evaluation/{{experiment}}/{{model}}/{{task}}/fold-{{fold}}_seed-{{seed}}.log",
    wildcard_constraints:
        model="fc_logreg|fc_svm|bandpower_logreg|eegnet|brainnetcnn",
        fold=r"\d+",
        seed=r"\d+",
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        config=evaluation_job_settings,
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
