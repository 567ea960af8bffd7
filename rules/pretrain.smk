# Self-supervised pretraining of MCSP on the dataset store (mcsp.train.pretrain): results/pretrain/all
# on every subject (pretrain.scope all) or results/pretrain/fold-K without test fold K's subjects
# (train_folds). A job killed by a time limit resumes from its checkpoint.pt when rerun.


rule pretrain:
    input:
        summary=f"{RESULTS}/store/store.json",
        index=f"{RESULTS}/store/index.tsv",
        pairs=f"{RESULTS}/store/pairs.tsv",
        samples=f"{RESULTS}/store/samples.h5",
    output:
        model=f"{RESULTS}/pretrain/{{scope}}/model.pt",
        summary=f"{RESULTS}/pretrain/{{scope}}/summary.json",
        subjects=f"{RESULTS}/pretrain/{{scope}}/subjects.tsv",
    log:
        f"{RESULTS}/logs/pretrain/{{scope}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/{{scope}}.tsv"
    wildcard_constraints:
        scope=r"all|fold-\d+",
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1 if CONFIG["use_gpu"] else 0,
    params:
        config=pretrain_params,
    script:
        "../workflow/scripts/pretrain.py"
