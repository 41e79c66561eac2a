"""HTTP routes: ``health`` and ``models`` (operations), ``images`` and ``latents`` (the product API)."""
