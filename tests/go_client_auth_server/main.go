// A TLS 1.3 HTTPS server for the mtls-audit tests (stdlib only, loopback only).
//
// Default ("lax"): it demands a client certificate and checks that it chains to
// the client CA, but judges it at the leaf's own NotBefore+1s and accepts any
// extended key usage, so expired, not-yet-valid and serverAuth-only client
// certificates get in. This is the mistake client-cert-validity must catch.
//
// -strict: the normal crypto/tls client verification (RequireAndVerifyClientCert
// with ClientCAs: dates and the clientAuth EKU checked).
//
// -allow ID: answer 403 unless the client leaf carries exactly one URI SAN, equal
// to ID (authorization on the SPIFFE ID, not on the subject).
//
// Every other request is answered 200 "ok", whatever the method and path.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8443", "address to listen on (loopback)")
	certFile := flag.String("cert", "", "server certificate chain (PEM, leaf first)")
	keyFile := flag.String("key", "", "server private key (PEM)")
	caFile := flag.String("ca", "", "client CA bundle (PEM)")
	strict := flag.Bool("strict", false, "verify client certificates the normal way (dates, clientAuth EKU)")
	allow := flag.String("allow", "", "answer 403 unless the client leaf's only URI SAN is this SPIFFE ID")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-listen must be a loopback IP:port, got %q", *listen)
	}
	certificate, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("server certificate: %v", err)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatalf("client CA: %v", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		log.Fatalf("client CA: no certificate in %s", *caFile)
	}

	config := &tls.Config{
		Certificates: []tls.Certificate{certificate},
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		NextProtos:   []string{"http/1.1"},
	}
	if *strict {
		config.ClientAuth = tls.RequireAndVerifyClientCert
		config.ClientCAs = clientCAs
	} else {
		config.ClientAuth = tls.RequireAnyClientCert
		config.VerifyPeerCertificate = laxVerifier(clientCAs)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *allow != "" && !hasOnlyURI(r.TLS, *allow) {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	listener, err := tls.Listen("tcp", *listen, config)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	server := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(os.Stderr, "", log.LstdFlags),
	}
	log.Printf("listening on %s (strict=%v allow=%q)", *listen, *strict, *allow)
	log.Fatal(server.Serve(listener))
}

// laxVerifier checks the chain to the client CA but ignores the dates (it verifies
// at the leaf's NotBefore+1s) and the extended key usage.
func laxVerifier(roots *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if len(rawCerts) == 0 {
			return errors.New("no client certificate")
		}
		certificates := make([]*x509.Certificate, 0, len(rawCerts))
		for _, raw := range rawCerts {
			parsed, err := x509.ParseCertificate(raw)
			if err != nil {
				return err
			}
			certificates = append(certificates, parsed)
		}
		intermediates := x509.NewCertPool()
		for _, extra := range certificates[1:] {
			intermediates.AddCert(extra)
		}
		leaf := certificates[0]
		// Judged at a moment inside the leaf's own validity: its dates never count.
		// (The end of its validity too, in case the CA did not exist yet at its start.)
		var err error
		for _, moment := range []time.Time{leaf.NotBefore.Add(time.Second), leaf.NotAfter.Add(-time.Second)} {
			_, err = leaf.Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: intermediates,
				CurrentTime:   moment,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			})
			if err == nil {
				return nil
			}
		}
		return err
	}
}

func hasOnlyURI(state *tls.ConnectionState, id string) bool {
	if state == nil || len(state.PeerCertificates) == 0 {
		return false
	}
	uris := state.PeerCertificates[0].URIs
	return len(uris) == 1 && uris[0].String() == id
}
