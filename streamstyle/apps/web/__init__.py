"""The web page that runs the style networks in the browser (page/), the site around it, and its server."""
