#!/bin/sh
# Build the krunner bundle's intrinsic sshd tools as STATIC musl binaries (see docs/krunner-volume.md):
#
#   $OUT/dropbearmulti   dropbear + dropbearkey + dropbearconvert (multi-call), from Debian's dropbear source
#   $OUT/sftp-server     OpenSSH's sftp-server, from Debian's openssh source
#   $OUT/VERSIONS        the Debian source versions used
#
# Runs in a throw-away stage of imagekit/bundle/builder/Dockerfile; needs deb-src for
# deb.debian.org, dpkg-dev, make, bzip2, gcc and musl-tools.  Debian's binary packages are
# dynamic (and dropbear re-execs itself through /proc/self/exe), so they cannot be copied.
set -eu

OUT=${1:?usage: build-sshd-tools.sh OUTPUT_DIR}
JOBS=${JOBS:-2}
KERNEL_DIR=/opt/kernel
BUILD=/build/sshd-tools

mkdir -p "$OUT" "$BUILD"
cd "$BUILD"
# the source packages with Debian's patches (security fixes included) applied
apt-get source -q dropbear openssh >/dev/null
DROPBEAR_SRC=$(find . -maxdepth 1 -type d -name 'dropbear-*' | head -n1)
OPENSSH_SRC=$(find . -maxdepth 1 -type d -name 'openssh-*' | head -n1)
[ -n "$DROPBEAR_SRC" ] && [ -n "$OPENSSH_SRC" ] || { echo "apt-get source gave no source trees" >&2; exit 1; }

# ---------------------------------------------------------------------------- dropbear
cd "$BUILD/$DROPBEAR_SRC"
# localoptions.h overrides default_options.h.
# * sftp: dropbear runs "$SHELL -c SFTPSERVER_PATH"; the bundle's sftp-server sits next to it.
# * no password logins: Debian's musl ships no crypt(), and kernel users log in with keys
#   (authorized_keys written by krunner).  Users, home directories and login shells still
#   come from the image's /etc/passwd: musl's getpwnam() reads it directly (no NSS), and
#   the shell must be listed in /etc/shells (musl's default without it: /bin/sh, /bin/csh).
cat > localoptions.h <<EOF
#define SFTPSERVER_PATH "$KERNEL_DIR/sftp-server"
#define DROPBEAR_SFTPSERVER 1
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_X11FWD 0
#define DO_MOTD 0
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EOF
# Without password logins compiled in, dropbear rejects -s/-g/-B ("Invalid option"), but krunner
# (like the upstream agent) starts it with -g.  Accept them: they only restrict password logins.
sed -i "/^#if DROPBEAR_SVR_PASSWORD_AUTH || DROPBEAR_SVR_PAM_AUTH\$/{N;s/^#if DROPBEAR_SVR_PASSWORD_AUTH || DROPBEAR_SVR_PAM_AUTH\(\n[[:space:]]*case .s.:\)/#if 1 \/* krunner: -s, -g, -B accepted; no password logins compiled in *\/\1/}" \
    svr-runopts.c
grep -q "^#if 1 /\* krunner: -s, -g, -B accepted" svr-runopts.c \
    || { echo "svr-runopts.c: the option patch did not apply" >&2; exit 1; }
CC=musl-gcc ./configure -q --enable-static --enable-bundled-libtom --disable-zlib --disable-pam \
    --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp --disable-wtmpx \
    --disable-pututline --disable-pututxline >/dev/null
make -s -j"$JOBS" PROGRAMS="dropbear dropbearkey dropbearconvert" MULTI=1 dropbearmulti >/dev/null 2>build.log \
    || { tail -n 40 build.log >&2; exit 1; }
strip dropbearmulti
install -m 0755 dropbearmulti "$OUT/dropbearmulti"

# ---------------------------------------------------------------------------- sftp-server
cd "$BUILD/$OPENSSH_SRC"
# Debian's patches touch configure.ac (GSSAPI, tcp-wrappers, systemd readiness: none of them
# matters for sftp-server); keep the shipped configure instead of regenerating it with autoconf.
touch configure config.h.in
CC=musl-gcc LDFLAGS=-static ./configure -q --without-openssl --without-zlib --without-pam --without-selinux \
    --without-kerberos5 --without-libedit --without-ldns --disable-security-key --without-pie \
    --with-sandbox=no --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp --disable-wtmpx >/dev/null
make -s -j"$JOBS" sftp-server >/dev/null 2>build.log || { tail -n 40 build.log >&2; exit 1; }
strip sftp-server
install -m 0755 sftp-server "$OUT/sftp-server"

# ---------------------------------------------------------------------------- checks
for bin in "$OUT/dropbearmulti" "$OUT/sftp-server"; do
    if readelf -l "$bin" | grep -q INTERP; then
        echo "$bin is not static" >&2
        exit 1
    fi
done
"$OUT/dropbearmulti" dropbearkey -t ed25519 -f "$BUILD/key" >/dev/null
"$OUT/dropbearmulti" dropbearconvert dropbear openssh "$BUILD/key" "$BUILD/key.openssh" >/dev/null 2>&1
grep -q "BEGIN OPENSSH PRIVATE KEY" "$BUILD/key.openssh"
# the options krunner passes must parse (here: up to loading the missing host key)
if "$OUT/dropbearmulti" dropbear -r "$BUILD/missing" -E -F -g -w -K 15 -I 0 -p 127.0.0.1:1 2>&1 \
        | grep -q "Invalid option"; then
    echo "dropbear rejects krunner's options" >&2
    exit 1
fi
{
    echo "dropbear $(dpkg-parsechangelog -l "$BUILD/$DROPBEAR_SRC/debian/changelog" -S Version)"
    echo "openssh $(dpkg-parsechangelog -l "$BUILD/$OPENSSH_SRC/debian/changelog" -S Version)"
} > "$OUT/VERSIONS"
cat "$OUT/VERSIONS"
ls -l "$OUT"
rm -rf "$BUILD"
