"""What makes a link-minute, in a module without numpy: the receiver's context (``receiver``) keeps only
such minutes, and a check's early reader of its store (``bluezone.matching.cli``, started before numpy is
imported) counts the RPIs heard that often."""

#: Sightings of one RPI in one slot that make a link-minute (fewer: no value, it is left out).
MIN_SIGHTINGS = 2
