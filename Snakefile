# mcsp workflow: contents list. Logic lives in the mcsp package; rules live in rules/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/synth.smk"
include: "rules/contract.smk"
include: "rules/cohort.smk"
include: "rules/fmri.smk"
include: "rules/eeg.smk"
include: "rules/store.smk"
include: "rules/pretrain.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# Quick steps that gather small files run inside the Snakemake process itself, not as cluster
# jobs that each wait in the queue and start a Python of their own: the QC tables, the metrics
# table, the paper's tables and the report.
localrules:
    fmri_qc,
    eeg_qc,
    metrics,
    tables,
    report,


rule all:
    default_target: True
    input:
        all_targets,
