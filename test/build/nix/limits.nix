# Test derivations for --max-log-size and --max-build-size (instantiated with a fresh salt).
# nix-instantiate limits.nix -A <attr> --argstr salt S
{ salt ? "", lib ? /tmp/nix-reference/nix/lib.nix }:
let
  l = import lib { inherit salt; };
in
{
  # Prints forever (and from a background child too): only the log limit stops it.
  logFlood = l.mk {
    name = "limits-log-flood";
    script = ''
      busybox sh -c 'while :; do echo "limits-flood-child $salt"; done' &
      while :; do echo "limits-flood $salt xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; done
    '';
  };
  # Writes 8 MiB into /build, then succeeds only if that worked (dd names the errno on failure).
  buildFlood = l.mk {
    name = "limits-build-flood";
    script = ''
      dd if=/dev/zero of=/build/big bs=65536 count=128
      echo ok > $out
    '';
  };
  # An 8 MiB output built in /nix/store directly (not through /build).
  bigOutput = l.mk {
    name = "limits-big-output";
    script = ''
      mkdir $out
      head -c 4194304 /dev/zero > $out/a
      head -c 4194304 /dev/zero > $out/b
    '';
  };
  # A small build that also uses /build, /tmp and passAsFile.
  small = l.mk {
    name = "limits-small";
    passAsFile = [ "text" ];
    text = "passed as a file\n";
    script = ''
      head -c 100000 /dev/zero > /build/scratch
      head -c 100000 /dev/zero > /tmp/scratch
      mkdir $out
      cp "$textPath" $out/text
      echo "log line"
    '';
  };
}
