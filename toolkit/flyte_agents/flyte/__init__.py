"""Pure Flyte knowledge (versions and naming, propeller's config model and merge rules, lint, the routing plan,
flavor detection): no I/O, imports only the standard library, pyyaml, and the shared errors, yamlio and kubeobjects."""
