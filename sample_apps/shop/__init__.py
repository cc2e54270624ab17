"""The seed's e-commerce checkout (Operon's demo), as a wf workflow: see README.md."""
