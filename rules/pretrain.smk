# Self-supervised pretraining of MCSP on the dataset store (mcsp.train.pretrain). The job resumes
# from results/pretrain/checkpoint.pt when it was killed (time limit, pre-emption) and rerun.


rule pretrain:
    input:
        summary=f"{RESULTS}/store/store.json",
        index=f"{RESULTS}/store/index.tsv",
        pairs=f"{RESULTS}/store/pairs.tsv",
        samples=f"{RESULTS}/store/samples.h5",
    output:
        model=f"{RESULTS}/pretrain/model.pt",
        summary=f"{RESULTS}/pretrain/summary.json",
    log:
        f"{RESULTS}/logs/pretrain.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain.tsv"
    conda:
        "../workflow/envs/mcsp.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=1 if CONFIG["use_gpu"] else 0,
    params:
        config={"model": CONFIG["model"], "pretrain": CONFIG["pretrain"]},
    script:
        "../workflow/scripts/pretrain.py"
