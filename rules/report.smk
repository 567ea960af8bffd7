# The run's tables (mcsp.tables) and its one-page HTML report (mcsp.report), last in `all`.


rule tables:
    input:
        metrics=f"{RESULTS}/evaluation/metrics.tsv",
        paired=f"{RESULTS}/evaluation/paired.tsv",
    output:
        index=f"{RESULTS}/report/tables/index.json",
        tables=[
            report(
                f"{RESULTS}/report/tables/{name}.tsv",
                caption="../workflow/report/table.rst",
                category="Tables",
            )
            for name in TABLE_NAMES
        ],
    log:
        f"{RESULTS}/logs/report/tables.log",
    conda:
        "../workflow/envs/mcsp.yaml"
    params:
        evaluate=EVALUATE,
        report=CONFIG["report"],
        context=lambda wildcards: table_context(),
    script:
        "../workflow/scripts/tables.py"


rule report:
    input:
        unpack(report_input),
    output:
        html=report(
            f"{RESULTS}/report/index.html",
            caption="../workflow/report/report.rst",
            category="Report",
        ),
    log:
        f"{RESULTS}/logs/report/report.log",
    conda:
        "../workflow/envs/mcsp.yaml"
    params:
        # <results>/report/index.html -> <results>
        results=lambda wildcards, output: str(Path(output.html).parents[1]),
    script:
        "../workflow/scripts/report.py"
