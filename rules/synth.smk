# The synthetic BIDS cohort: raw EEG (BrainVision), fMRIPrep-like derivatives, ground truth.


if SYNTH["activate"]:

    rule synth:
        output:
            directory(SYNTH["out"]),
        log:
            f"{RESULTS}/logs/synth.log",
        benchmark:
            f"{RESULTS}/benchmarks/synth.tsv"
        conda:
            "../workflow/envs/mcsp.yaml"
        threads: SYNTH["threads"]
        resources:
            mem_mb=per_attempt(4000),
            runtime=per_attempt(60),
        params:
            n_subjects=SYNTH["subjects"],
            seed=SYNTH["seed"],
            eeg_duration_s=SYNTH["eeg_duration_s"],
            fmri_volumes=SYNTH["fmri_volumes"],
            fmri_voxel_size_mm=SYNTH["fmri_voxel_size_mm"],
            effects=SYNTH["effects"],
        script:
            "../workflow/scripts/synth.py"
