"""``wf ui``: the local web dashboard (the ``wf-runner[ui]`` extra).

A thin layer over the public ``wf`` API and ``wf._support``, like the CLI: it
writes no SQL. ``app`` builds the ASGI application (starlette), ``routes``
holds the pages and the JSON API, ``data`` gathers what a page shows,
``timeline`` lays a workflow's calls out to scale and ``security`` holds the
token, CSRF and Host checks. Templates and the small JS/CSS ship in the
package: the pages load nothing from a CDN."""
