"""Training: settings (config), data (data), the output folder and its resume state (output), the loop (loop),
progress events (events), starting from an --init model (finetune), torchrun glue (distributed) and
refitting a trained model's priors (refit). Import the module you need; nothing is re-exported here."""
