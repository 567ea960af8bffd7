# Self-supervised pretraining of MCSP on the dataset store (mcsp.train.pretrain), one job per
# variant (default = the pretrain and model blocks; pretrain.variants) and scope:
# results/pretrain/<variant>/all on every subject (pretrain.scope all) or
# results/pretrain/<variant>/fold-K without test fold K's subjects (train_folds). A job killed by a
# time limit resumes from its checkpoint.pt when rerun. Pretraining heads the longest chain of
# jobs (pretraining, then fine-tuning), so it runs first among the jobs ready, and the short
# baselines fill the cores at the end: its priority (3) outweighs two fine-tuning jobs (1 each) on
# its two cores, as Snakemake's scheduler sums the priorities of the jobs it picks.


rule pretrain:
    input:
        summary=f"{RESULTS}/store/store.json",
        index=f"{RESULTS}/store/index.tsv",
        pairs=f"{RESULTS}/store/pairs.tsv",
        samples=f"{RESULTS}/store/samples.h5",
    output:
        model=f"{RESULTS}/pretrain/{{variant}}/{{scope}}/model.pt",
        summary=f"{RESULTS}/pretrain/{{variant}}/{{scope}}/summary.json",
        subjects=f"{RESULTS}/pretrain/{{variant}}/{{scope}}/subjects.tsv",
    log:
        f"{RESULTS}/logs/pretrain/{{variant}}/{{scope}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{variant}}/{{scope}}.tsv"
    wildcard_constraints:
        variant="[A-Za-z0-9_]+",
        scope=r"all|fold-\d+",
    priority: 3
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 2
    resources:
        mem_mb=per_attempt(8000),
        runtime=per_attempt(240),
        gpu=1 if CONFIG["use_gpu"] else 0,
    params:
        config=pretrain_params,
    script:
        "../workflow/scripts/pretrain.py"
