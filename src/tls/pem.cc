#include "tls/pem.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

namespace feos::tls {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

BioPtr memory_bio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// OpenSSL's reason for the last failure; its error queue is left empty.
std::string openssl_error() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// Encrypted keys would make OpenSSL prompt on the terminal: refuse them instead.
int no_passphrase(char*, int, int, void*) { return 0; }

X509Ptr first_certificate(std::string_view pem) {
  auto bio = memory_bio(pem);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr), &X509_free);
}

}  // namespace

Status check_certificates(std::string_view pem, const std::string& what) {
  auto bio = memory_bio(pem);
  ERR_clear_error();
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, &no_passphrase, nullptr)) {
    X509_free(cert);
    ++count;
  }
  // The loop ends with "no start line" after the last certificate; anything else is damage.
  unsigned long last = ERR_peek_last_error();
  bool clean_end = ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (count == 0 || !clean_end)
    return fail(Code::kInvalidArgument, what + " is not a PEM certificate file: " + openssl_error());
  ERR_clear_error();
  return ok();
}

Status check_key_pair(std::string_view cert_pem, const std::string& cert_what, std::string_view key_pem,
                      const std::string& key_what) {
  FEOS_TRY(check_certificates(cert_pem, cert_what));
  X509Ptr cert = first_certificate(cert_pem);
  auto bio = memory_bio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr), &EVP_PKEY_free);
  if (!key)
    return fail(Code::kInvalidArgument,
                key_what + " is not an unencrypted PEM private key: " + openssl_error());
  if (!cert || X509_check_private_key(cert.get(), key.get()) != 1)
    return fail(Code::kInvalidArgument,
                key_what + " does not match the certificate in " + cert_what + ": " + openssl_error());
  ERR_clear_error();
  return ok();
}

bool first_certificate_expired(std::string_view pem) {
  X509Ptr cert = first_certificate(pem);
  ERR_clear_error();
  return cert && X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0;
}

}  // namespace feos::tls
