"""Code the test suite shares, in one place (and the benchmarks in `bench/` import from here).

- `live`: `tusserver serve` in a subprocess; `tus_http`: tus over real HTTP against it;
  `rawhttp`: a raw keep-alive HTTP/1.1 connection; `tus`: tus through Flask's test client.
- `store`: drive a data store as the service does; `s3`: moto launchers and S3 settings.
- `data`: random upload bodies, made once; `roundtrip`: a 1 GiB upload and download with the
  server's memory sampled; `procstats`: process-tree RSS and CPU from /proc.
- `browser`, `npm`, `tools`: Chromium, the npm packages and other programs the tests drive.
- `hook_receiver`, `python_hooks`: hook endpoints that record what they get.
- `skip_guard`: the pytest plugin that makes every skip a failure in CI.
"""
