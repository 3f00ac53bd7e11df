"""Per-request adapters on a loaded model: LoRA (+ compiled slots), textual inversion, VAE and
checkpoint overrides, ControlNet, IP-Adapter. None of them leaks into the next request."""
