from mtls_audit.scanner.cli.commands import main

main()
