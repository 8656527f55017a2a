"""``auditdm review``: label audited pairs by hand in a local web page."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("review")
    parser.add_argument("dataset", help="audit output directory; labels go to <dataset>/labels.jsonl")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--all", dest="include_all", action="store_true", help="show every probe, not only the failures")
    args = parser.parse_args(argv)
    from ..review import serve

    server = serve(args.dataset, args.port, args.include_all)
    print(f"reviewing {args.dataset} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
