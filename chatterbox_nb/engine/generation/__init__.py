"""Generation: a say's pieces from text, timed per stage, streamed while T3 samples, stopped
on request; warm-up and S3Gen's compiled estimator."""
