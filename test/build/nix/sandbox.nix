# Test derivations for the sandbox (instantiated by the tests with a fresh salt).
# nix-instantiate sandbox.nix -A <attr> --argstr salt S [--argstr port P]
{ salt ? "", port ? "1", lib ? /tmp/nix-reference/nix/lib.nix }:
let
  l = import lib { inherit salt; };
  # a regular-file input (hard-linked into the sandbox when builds run as a separate user)
  inputFile = builtins.toFile "sandbox-input.txt" "precious\n";
in
{
  # Every escape attempt prints "<probe>: blocked" or "<probe>: ESCAPED"; the build succeeds.
  escape = l.mk {
    name = "sandbox-escape";
    inherit port;
    script = ''
      try() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n: ESCAPED"; else echo "$n: blocked"; fi; }
      {
        try write-input touch ${l.busybox}/planted
        try modify-file-input sh -c 'echo x >> ${inputFile}'
        try chmod-file-input chmod u+w ${inputFile}
        try hardlink-file-input ln ${inputFile} /build/link
        try read-etc-hostname cat /etc/hostname
        try read-root ls /root
        try read-host-etc-shadow cat /etc/shadow
        try read-host-tmp ls /tmp/nix-reference
        try read-host-nix-var ls /nix/var
        try wget-loopback wget -q -T 3 -O /build/got http://localhost:$port/
        try nc-loopback sh -c "nc -w 3 127.0.0.1 $port </dev/null | grep -q hello"
        try chown-root chown 0:0 /build
        try mount-proc mount -t tmpfs none /build
        echo done
      } > $out
      # allowed inside (as in Nix), must never reach the host or the store:
      echo planted > /nix/store/00000000000000000000000000000000-planted || true
      echo escaped-marker > /tmp/lazystore-escape-marker || true
      echo escaped-marker > /build/lazystore-escape-marker || true
    '';
  };
  # Positive control for the network probes: a fixed-output derivation gets the network.
  fodNet = l.mk {
    name = "sandbox-fod-net";
    inherit port;
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    # sha256 of "hello from the host\n"
    outputHash = "sha256-5KmF/rpsKRsN4jGc5TtB5E1qFBPFNcWGpknolqxiN0M=";
    script = ''nc -w 5 127.0.0.1 $port </dev/null > $out'';
  };
  passAsFile = l.mk {
    name = "sandbox-pass-as-file";
    passAsFile = [ "big" "other" ];
    big = builtins.concatStringsSep "\n" (builtins.genList (i: "line ${toString i}") 3000);
    other = "small value";
    script = ''
      mkdir $out
      cp "$bigPath" $out/big
      cp "$otherPath" $out/other
      echo "$bigPath $otherPath" > $out/paths
      env | grep -c '^big=' > $out/big-in-env || true
    '';
  };
  fail = l.mk {
    name = "sandbox-fail";
    script = ''echo "about to fail"; echo "on stderr" >&2; exit 3'';
  };
  noOutput = l.mk { name = "sandbox-no-output"; script = ''echo "I make nothing"''; };
  sleeper = l.mk { name = "sandbox-sleeper"; script = ''echo started; sleep 60; echo done > $out''; };
  silent = l.mk { name = "sandbox-silent"; script = ''echo one line; sleep 60; echo done > $out''; };
  nondet = l.mk { name = "sandbox-nondet"; script = "cat /proc/sys/kernel/random/uuid > $out"; };
}
