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


rule all:
    default_target: True
    input:
        all_targets,
