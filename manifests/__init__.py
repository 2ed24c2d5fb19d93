"""Package data: dataset manifests, protocols, codec profiles, weight tables, training configs (installed as
cpgd_bench.manifests; read through cpgd_bench.resources)."""
