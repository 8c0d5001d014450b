from dicomnode.cli.main import app

app()
