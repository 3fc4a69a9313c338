"""Server side of prescription signing: the issuing key, sealed doctor keys, QR rendering."""
