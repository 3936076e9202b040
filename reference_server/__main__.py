from reference_server.cli import main

raise SystemExit(main())
