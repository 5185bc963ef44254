-- wrk script: send HEAD instead of GET (the URL and headers come from the command line).
wrk.method = "HEAD"
