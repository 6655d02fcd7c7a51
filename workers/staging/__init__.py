"""Job files through S3: a job's input bundle in, its outputs and logs out."""
